"""Progress reporting for long runs, as a callback (solvers themselves never print)."""

from __future__ import annotations

from tqdm.auto import tqdm


class ProgressBar:
    """A tqdm bar over every step of every sample chunk (and slice), showing the current loss.

    Pass an instance as ``callback=`` to :func:`reddiff.red_diff`; it works in a
    terminal and in Jupyter (``tqdm.auto``). Call :meth:`close` when done, or use
    it as a context manager.

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
            self.bar = tqdm(total=total, desc=self.desc, unit="step", **self.tqdm_kwargs)
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
