"""Progress reporting for long runs, as a callback (solvers themselves never print)."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings

from tqdm.std import tqdm as text_bar


def bar_class() -> type:
    """The tqdm class to draw with: the widget bar in a Jupyter kernel with ipywidgets, else the text bar.

    ``tqdm.auto`` makes the same choice, but where ipywidgets is missing it warns
    (``TqdmWarning: IProgress not found``) before falling back; here the fallback is quiet.
    Qt consoles and Spyder (kernels without widgets) get the text bar, as with ``tqdm.auto``.

    Examples
    --------
    >>> bar_class().__module__  # not in a Jupyter kernel
    'tqdm.std'
    """
    if "ipykernel.zmqshell" not in sys.modules or any(k == "QT_API" or k.startswith("SPYDER") for k in os.environ):
        return text_bar
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from tqdm.notebook import IProgress, tqdm as widget_bar
    except ImportError:
        return text_bar
    return text_bar if IProgress is None else widget_bar


class ProgressBar:
    """A tqdm bar over every step of every sample chunk (and slice), showing the current loss.

    Pass an instance as ``callback=`` to :func:`reddiff.red_diff`; it works in a
    terminal and in Jupyter (a widget where ipywidgets is installed, else text:
    :func:`bar_class`). Call :meth:`close` when done, or use it as a context manager.

    Examples
    --------
    >>> with ProgressBar(disable=True) as bar:
    ...     bar({"step": 0, "steps": 2, "chunk": 0, "n_chunks": 1, "loss": 1.0,
    ...          "data_loss": 0.5, "reg_loss": 0.5})
    """

    def __init__(self, desc: str = "RED-Diff", **tqdm_kwargs):
        self.desc, self.tqdm_kwargs, self.bar = desc, tqdm_kwargs, None

    def __call__(self, info: dict) -> None:
        if self.bar is None:
            total = info["steps"] * info.get("n_chunks", 1) * info.get("n_slices", 1)
            self.bar = bar_class()(total=total, desc=self.desc, unit="step", **self.tqdm_kwargs)
        self.bar.set_postfix(loss=f"{info['loss']:.4g}", data=f"{info['data_loss']:.4g}",
                             refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def progress_callback(callback=None, show: bool = True, *, desc: str = "RED-Diff"):
    """The callback to run with: ``callback`` if given, else a :class:`ProgressBar` when
    ``show`` (closed on exit), else None.

    Examples
    --------
    >>> with progress_callback(print) as callback:
    ...     callback is print
    True
    >>> with progress_callback(show=False) as callback:
    ...     callback is None
    True
    """
    if callback is not None or not show:
        yield callback
        return
    with ProgressBar(desc=desc) as bar:
        yield bar
