"""The uncertainty figure: panels, physical axes, magnitudes, colour bars, PNG output."""

import numpy as np
import pytest
import torch
from astropy.wcs import WCS

from reddiff import InputError, Reconstruction
from reddiff.figures import uncertainty_figure
from reddiff.result import with_coords, with_wcs


def reconstruction(channels=1, size=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(5, channels, size, size, generator=g)
    return Reconstruction.from_samples(s, units="1/mm")


def titled(fig):
    return {ax.get_title(): ax for ax in fig.axes if ax.get_title()}


def test_panels_follow_what_is_given():
    rec = reconstruction()
    assert set(titled(uncertainty_figure(rec))) == {"Mean", "Std"}
    truth = torch.zeros(1, 1, 12, 12)
    full = titled(uncertainty_figure(rec, measurement_image=torch.ones(12, 12), baseline=truth,
                                     truth=truth, title="demo"))
    assert {"Measurement", "Baseline", "Truth", "Mean", "Std", "|Error|"} <= set(full)
    scatter = next(t for t in full if t.startswith("Std vs |error|"))
    corr = np.corrcoef(rec.std.values.ravel(), np.abs(rec.mean.values).ravel())[0, 1]
    assert f"corr {corr:.2f}" in scatter


def test_each_image_panel_has_a_colour_bar_with_units():
    fig = uncertainty_figure(reconstruction(), truth=torch.zeros(1, 12, 12))
    colorbars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(colorbars) == 4  # truth, mean, std, |error|
    assert all(cb.get_ylabel() == "1/mm" for cb in colorbars)


def test_physical_axes_in_mm():
    rec = with_coords(reconstruction(), spacing=(0.5, 0.5), origin=(10.0, -3.0))
    ax = titled(uncertainty_figure(rec))["Mean"]
    assert ax.get_xlabel() == "x (mm)"
    left, right, bottom, top = ax.get_images()[0].get_extent()
    assert (left, right) == pytest.approx((-3.25, -3.25 + 6.0))
    assert (top, bottom) == pytest.approx((9.75, 9.75 + 6.0))  # row 0 at the top


def test_complex_images_shown_as_magnitude_and_error_is_absolute():
    rec = reconstruction(channels=2)
    truth = torch.zeros(1, 2, 12, 12)
    panels = titled(uncertainty_figure(rec, truth=truth))
    shown = panels["Mean"].get_images()[0].get_array()
    np.testing.assert_allclose(shown, rec.magnitude().values, rtol=1e-6)
    error = panels["|Error|"].get_images()[0].get_array()
    np.testing.assert_allclose(error, rec.magnitude().values, rtol=1e-6)
    np.testing.assert_allclose(panels["Std"].get_images()[0].get_array(),
                               rec.magnitude("std").values, rtol=1e-6)


def test_sky_images_get_ra_dec_axes():
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval, wcs.wcs.crpix, wcs.wcs.cdelt = [150.0, 2.0], [6.0, 6.0], [-1e-3, 1e-3]
    ax = titled(uncertainty_figure(with_wcs(reconstruction(), wcs)))["Mean"]
    assert type(ax).__name__ == "WCSAxes"
    assert ax.get_images()[0].origin == "lower"


def test_png_written_atomically(tmp_path):
    path = tmp_path / "fig.png"
    uncertainty_figure(reconstruction(), truth=torch.zeros(1, 12, 12), path=path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(tmp_path.iterdir()) == [path]


def test_bad_inputs_raise_input_errors():
    rec = reconstruction()
    with pytest.raises(InputError, match="truth"):
        uncertainty_figure(rec, truth=torch.zeros(1, 8, 8))
    with pytest.raises(InputError, match="baseline"):
        uncertainty_figure(rec, baseline=torch.zeros(12))
    with pytest.raises(InputError, match="Reconstruction"):
        uncertainty_figure(rec.dataset)
