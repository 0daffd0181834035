"""An uncertainty report: the figure plus a short Markdown summary of one result.

:func:`write_report` writes ``report.md`` and ``uncertainty.png`` into a folder:
image quality (PSNR/SSIM) and interval coverage when the truth is known, the size of
the uncertainty, the calibration used, and the solver settings, seeds and timing
from the result's attrs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from .errors import InputError
from .figures import _magnitude, uncertainty_figure
from .files import atomic_write
from .result import Reconstruction
from .uncertainty import Calibration, uncertainty_metrics

FIGURE_NAME = "uncertainty.png"
REPORT_NAME = "report.md"


def image_quality(truth, image) -> dict[str, float]:
    r"""PSNR (dB) and SSIM of ``image`` against ``truth``, on magnitudes.

    .. math:: \mathrm{PSNR} = 10 \log_{10} \frac{R^2}{\operatorname{mean}(x - \hat x)^2},
              \qquad R = \max x - \min x

    ``data_range`` :math:`R` comes from the truth, so the numbers do not depend on
    the estimate's range. Images are ``(H, W)``, ``(C, H, W)`` or ``(1, C, H, W)``;
    two channels (real, imag) are compared as magnitudes.

    Examples
    --------
    >>> import numpy as np
    >>> truth = np.linspace(0, 1, 64).reshape(8, 8)
    >>> round(image_quality(truth, truth + 0.01)["psnr"], 1)
    40.0
    """
    x, estimate = _magnitude(truth, "truth"), _magnitude(image, "image")
    if x.shape != estimate.shape:
        raise InputError(f"image has shape {estimate.shape}; expected {x.shape} like the truth",
                         field="image")
    data_range = float(x.max() - x.min())
    if data_range == 0:
        raise InputError("truth is constant; PSNR and SSIM need a data range", field="truth")
    win = min(7, *(s if s % 2 else s - 1 for s in x.shape))
    return {"psnr": float(peak_signal_noise_ratio(x, estimate, data_range=data_range)),
            "ssim": float(structural_similarity(x, estimate, data_range=data_range, win_size=win))}


def write_report(reconstruction: Reconstruction, out_dir, *, truth=None, baseline=None,
                 measurement_image=None, calibration: Calibration | None = None,
                 level: float = 0.9, title: str = "RED-Diff reconstruction",
                 labels: dict | None = None) -> Path:
    """Write ``report.md`` and ``uncertainty.png`` for one result into ``out_dir``.

    Parameters
    ----------
    reconstruction : reddiff.Reconstruction
    out_dir : str or Path
        Folder for the two files (created if missing; files replaced atomically).
    truth, baseline, measurement_image : array-like, optional
        Images in the result's units (see :func:`reddiff.figures.uncertainty_figure`).
        With the truth, the report gives PSNR/SSIM and measured coverage.
    calibration : reddiff.uncertainty.Calibration, optional
        Applied to the result (its ``level`` replaces ``level``); a calibration
        already stored in the result is used otherwise.
    level : float
        Central level of the reported intervals.
    title : str
        Heading of the report and the figure.
    labels : dict, optional
        Names of the measurement image and the baseline (figure titles, report rows).

    Returns
    -------
    Path
        The written ``report.md``.

    Examples
    --------
    >>> import tempfile, torch
    >>> rec = Reconstruction.from_samples(torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)))
    >>> truth = torch.linspace(-1, 1, 64).view(1, 1, 8, 8)
    >>> path = write_report(rec, tempfile.mkdtemp(), truth=truth)
    >>> "Coverage" in path.read_text()
    True
    """
    if calibration is not None:
        reconstruction = reconstruction.calibrated(calibration)
    calibration = reconstruction.calibration
    if calibration is not None:
        level = calibration.level
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    uncertainty_figure(reconstruction, measurement_image=measurement_image, baseline=baseline,
                       truth=truth, title=title, path=out_dir / FIGURE_NAME, level=level, labels=labels)
    lines = [f"# {title}", "", f"![uncertainty figure]({FIGURE_NAME})", ""]
    if truth is not None:
        lines += _quality_section(reconstruction, truth, baseline, (labels or {}).get("baseline", "baseline"))
    lines += _uncertainty_section(reconstruction, truth, level, calibration)
    lines += _settings_section(reconstruction)
    text = "\n".join(lines) + "\n"
    return atomic_write(out_dir / REPORT_NAME, lambda tmp: Path(tmp).write_text(text))


def _quality_section(reconstruction, truth, baseline, baseline_name) -> list[str]:
    rows = [("RED-Diff mean", image_quality(truth, reconstruction.tensor("mean")))]
    if baseline is not None:
        rows.append((baseline_name, image_quality(truth, baseline)))
    return ["## Image quality (against the truth)", "", "| image | PSNR (dB) | SSIM |",
            "|---|---|---|", *(f"| {name} | {q['psnr']:.2f} | {q['ssim']:.4f} |" for name, q in rows),
            ""]


def _uncertainty_section(reconstruction, truth, level, calibration) -> list[str]:
    units = reconstruction.mean.attrs.get("units") or "image units"
    std = reconstruction.std.values
    lines = ["## Uncertainty", "",
             f"- samples: {reconstruction.dataset.attrs.get('n_samples', '?')}; std over samples: "
             f"mean {np.mean(std):.4g}, max {np.max(std):.4g} ({units})"]
    attrs = reconstruction.dataset.attrs
    source = attrs.get("calibration_source")
    if calibration is not None:
        factors = ", ".join(f"{k:.3g}" for k in calibration.scales)
        context = dict(calibration.context)
        fitted_on, law = context.pop("fitted_on", None), context.pop("noise_law", None)
        lines.append(f"- calibration{f' ({source})' if source else ''}: std widened by {factors} "
                     f"({calibration.method} intervals, {len(calibration.scales)} std bin(s)), fitted for "
                     f"{calibration.level:.0%} coverage on {calibration.n_images} simulated "
                     f"image(s) ({_describe(context)}); coverage there "
                     f"{calibration.coverage_before:.1%} before, {calibration.coverage_after:.1%} after")
        if calibration.proxy_weight > 0:
            lines.append(f"- the std is first combined with an error proxy, the mean's {calibration.proxy}: "
                         f"sqrt(std^2 + ({calibration.proxy_weight:.3g} x {calibration.proxy})^2)")
        if law:
            lines.append(f"- the factor follows the noise level sigma of the measurement: {law}")
        if fitted_on:
            lines.append(f"- fitted on: {', '.join(map(str, fitted_on))}")
    else:
        lines.append(f"- uncalibrated{f' ({source})' if source else ''}: RED-Diff's runs differ less than "
                     "the posterior, so the raw std under-states the error; fit a calibration on your own "
                     "reference images with `reddiff calibrate REFERENCES... --like MEASUREMENT`")
    for warning in json.loads(attrs.get("calibration_warnings") or "[]"):
        lines.append(f"- **warning**: {warning}: the calibrated intervals may not hold their level here")
    if truth is None:
        return lines + ["- coverage: not measured (no truth given)", ""]
    rows = [("raw", uncertainty_metrics(reconstruction, truth, level=level))]
    if calibration is not None:
        rows.append(("calibrated", uncertainty_metrics(reconstruction, truth, level=level,
                                                       calibration=calibration)))
    header = "| | " + " | ".join(name for name, _ in rows) + " |"
    table = [("Coverage of the {:.0%} interval".format(level), "coverage", "{:.1%}"),
             (f"Mean interval width ({units})", "mean_width", "{:.4g}"),
             ("Std of z = (truth - mean) / std (1 if right-sized)", "z_std", "{:.3g}"),
             ("Correlation of std with abs(error)", "std_error_correlation", "{:.3f}"),
             ("Rank correlation of std with abs(error)", "std_error_spearman", "{:.3f}")]
    return lines + ["", header, "|---" * (len(rows) + 1) + "|",
                    *(f"| {label} | " + " | ".join(fmt.format(m[key]) for _, m in rows) + " |"
                      for label, key, fmt in table),
                    f"\nRMSE of the mean: {rows[0][1]['rmse']:.4g} ({units}).", ""]


def _settings_section(reconstruction) -> list[str]:
    attrs = reconstruction.dataset.attrs
    config = reconstruction.config
    seeds = reconstruction.seeds
    lines = ["## Settings", "", *_lam_sentence(config), "| setting | value |", "|---|---|"]
    lines += [f"| {key} | `{_value(value)}` |" for key, value in config.items()]
    if seeds:
        shown = ", ".join(map(str, seeds[:4])) + (", ..." if len(seeds) > 4 else "")
        lines.append(f"| seeds | `{shown}` ({len(seeds)}) |")
    for key in ("time_s", "device", "torch_version", "reddiff_version"):
        if key in attrs:
            value = attrs[key]
            lines.append(f"| {key} | `{value:.3g}` |" if isinstance(value, float) and
                         math.isfinite(value) else f"| {key} | `{value}` |")
    return lines + [""]


def _lam_sentence(config: dict) -> list[str]:
    """How ``lam`` was chosen, where ``lam="auto"`` chose it (:mod:`reddiff.discrepancy`)."""
    choice = config.get("lam_choice")
    if not choice:
        return []
    pilots = ", ".join(f"{lam:.3g} (ρ {ratio:.3f})" for lam, ratio in zip(choice["pilot_lams"], choice["pilot_ratios"]))
    if choice.get("note"):
        return [f"**{choice['note']}.** Pilots: {pilots}.", ""]
    return [f"`lam` = {config['lam']:.3g}, chosen by the discrepancy principle: the deviance ratio ρ = D / E[D] of "
            f"one-sample pilot runs at {pilots}, fitted in log-log and solved for ρ = {choice['target']:g}.", ""]


def _value(value) -> str:
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def _describe(context: dict) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in context.items()) or "no context recorded"
