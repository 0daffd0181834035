"""Reconstruction: summaries, units, physical and sky coordinates, NetCDF round trip."""

import json

import numpy as np
import pytest
import torch
import xarray as xr
from astropy.io import fits
from astropy.wcs import WCS

from reddiff import InputError, Reconstruction
from reddiff.files import atomic_write
from reddiff.result import with_coords, with_wcs
from reddiff.uncertainty import fit_calibration


def samples(n=6, c=1, h=5, w=7, seed=0):
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def sky_wcs(crpix=(4.0, 3.0)):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = list(crpix)
    wcs.wcs.cdelt = [-1e-3, 1e-3]
    return wcs


def test_from_samples_summaries_and_units():
    s = samples()
    attrs = {"config": {"lam": 0.5, "transform": {"kind": "affine", "unit": "1/mm"}},
             "seeds": [1, 2], "time_s": 0.25}
    rec = Reconstruction.from_samples(s, quantiles=(0.1, 0.9), keep_samples=True, attrs=attrs)
    np.testing.assert_allclose(rec.mean.values, s.mean(0).numpy(), rtol=1e-6)
    np.testing.assert_allclose(rec.std.values, s.std(0, correction=0).numpy(), rtol=1e-5)
    np.testing.assert_allclose(rec.dataset["quantiles"].sel(quantile=0.9).values,
                               np.quantile(s.numpy(), 0.9, axis=0), rtol=1e-5, atol=1e-6)
    assert rec.mean.attrs["units"] == rec.std.attrs["units"] == "1/mm"
    assert rec.config["lam"] == 0.5 and rec.seeds == [1, 2]
    assert Reconstruction.from_samples(s, units="count").mean.attrs["units"] == "count"
    assert rec.tensor().shape == (1, 1, 5, 7)


def test_magnitude_of_complex_channels():
    s = torch.zeros(2, 2, 2, 2)
    s[:, 0], s[:, 1] = 3.0, 4.0
    rec = Reconstruction.from_samples(s)
    assert list(rec.mean.channel.values) == ["real", "imag"]
    np.testing.assert_allclose(rec.magnitude().values, 5.0)


def test_with_coords_gives_pixel_centres_in_mm():
    rec = with_coords(Reconstruction.from_samples(samples()), spacing=(0.5, 0.8),
                      origin=(-10.0, 2.0))
    np.testing.assert_allclose(rec.dataset["y"].values, -10.0 + 0.5 * np.arange(5))
    np.testing.assert_allclose(rec.dataset["x"].values, 2.0 + 0.8 * np.arange(7))
    assert rec.dataset["x"].attrs["units"] == "mm"
    for bad, field in [(dict(spacing=(0, 1)), "spacing"), (dict(spacing=(1,)), "spacing"),
                       (dict(origin=(np.nan, 0)), "origin")]:
        with pytest.raises(InputError) as err:
            with_coords(rec, **bad)
        assert err.value.field == field


def test_with_wcs_adds_sky_coordinates_matching_astropy():
    wcs = sky_wcs()
    rec = with_wcs(Reconstruction.from_samples(samples()), wcs)
    ra, dec = wcs.pixel_to_world_values(6, 4)  # x = 6, y = 4 (0-based)
    assert rec.dataset["ra"].values[4, 6] == pytest.approx(ra)
    assert rec.dataset["dec"].values[4, 6] == pytest.approx(dec)
    assert rec.dataset["ra"].attrs["units"] == "deg"
    assert rec.wcs.wcs.crpix.tolist() == [4.0, 3.0]
    # a FITS header (as read from a file) and its string work too
    header = wcs.to_header()
    from_header = with_wcs(Reconstruction.from_samples(samples()), header)
    from_text = with_wcs(Reconstruction.from_samples(samples()), header.tostring(sep="\n"))
    np.testing.assert_allclose(from_header.dataset["ra"].values, rec.dataset["ra"].values)
    np.testing.assert_allclose(from_text.dataset["dec"].values, rec.dataset["dec"].values)
    with pytest.raises(InputError, match="2-D WCS"):
        with_wcs(rec, WCS(naxis=3))
    with pytest.raises(InputError, match="header"):
        with_wcs(rec, 42)


def test_netcdf_round_trip_preserves_values_coords_and_attrs(tmp_path):
    s = samples(c=2)
    truth = torch.zeros(1, 2, 5, 7)
    attrs = {"config": {"steps": 10, "prior": "gaussian", "physics": "MRI"}, "seeds": [3, 4],
             "time_s": 1.5, "device": "cpu"}
    rec = Reconstruction.from_samples(s, keep_samples=True, attrs=attrs, units="a.u.")
    rec = with_wcs(with_coords(rec, spacing=(0.7, 0.7)), sky_wcs())
    rec = rec.calibrated(fit_calibration([rec], [truth]))
    back = Reconstruction.from_netcdf(rec.to_netcdf(tmp_path / "r.nc"))
    assert set(back.dataset.data_vars) == set(rec.dataset.data_vars) == {
        "mean", "std", "quantiles", "samples", "std_calibrated", "lower", "upper"}
    for name in rec.dataset.data_vars:
        np.testing.assert_array_equal(back.dataset[name].values, rec.dataset[name].values)
        assert back.dataset[name].attrs == rec.dataset[name].attrs
    for name in ("y", "x", "ra", "dec", "channel", "quantile"):
        np.testing.assert_array_equal(back.dataset[name].values, rec.dataset[name].values)
        assert back.dataset[name].attrs == rec.dataset[name].attrs
    assert back.dataset.attrs == rec.dataset.attrs
    assert back.config == attrs["config"] and back.seeds == [3, 4]
    assert back.calibration == rec.calibration
    assert back.wcs.to_header().tostring() == rec.wcs.to_header().tostring()
    assert list(tmp_path.iterdir()) == [tmp_path / "r.nc"]  # no temporary left behind


def test_from_netcdf_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="no such file") as err:
        Reconstruction.from_netcdf(tmp_path / "missing.nc")
    assert err.value.path.endswith("missing.nc")
    junk = tmp_path / "junk.nc"
    junk.write_text("not netcdf")
    with pytest.raises(InputError, match="not a readable NetCDF"):
        Reconstruction.from_netcdf(junk)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    def fail(tmp):
        with open(tmp, "w") as f:
            f.write("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "out.txt", fail)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="output folder"):
        atomic_write(tmp_path / "nope" / "out.txt", fail)
    path = atomic_write(tmp_path / "ok.json", lambda tmp: open(tmp, "w").write(json.dumps([1])))
    assert json.loads(path.read_text()) == [1]


def test_files_carry_cf_metadata_and_read_back_in_reddiff_units(tmp_path):
    import h5py

    rec = with_coords(Reconstruction.from_samples(torch.rand(3, 1, 4, 5), units="HU"), spacing=(0.5, 0.5))
    path = rec.to_netcdf(tmp_path / "r.nc")
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        assert ds.attrs["Conventions"] == "CF-1.8" and "reddiff" in ds.attrs["history"]
        mean = ds["reconstruction_mean"]
        assert mean.attrs["units"] == "1" and "Hounsfield" in mean.attrs["long_name"]
        assert (ds["x"].attrs["axis"], ds["y"].attrs["axis"], ds["x"].attrs["units"]) == ("X", "Y", "mm")
        assert ds["x"].attrs["standard_name"] == "projection_x_coordinate"
        assert callable(ds.mean) and "mean" not in ds.variables  # no variable hides the method
    with h5py.File(path, "r") as f:
        assert all("_FillValue" not in f[name].attrs for name in ("x", "y", "quantile"))
    back = Reconstruction.from_netcdf(path)
    assert back.mean.attrs == rec.mean.attrs and back.dataset["x"].attrs == rec.dataset["x"].attrs


def _drawn(data_array, **plot_kwargs):
    """The red channel of ``data_array.plot()`` drawn with Agg onto a 64x64 px canvas, no axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2), dpi=32)
    FigureCanvasAgg(fig)
    ax = fig.add_axes([0, 0, 1, 1])
    artist = data_array.plot(ax=ax, cmap="gray", add_colorbar=False, **plot_kwargs)
    ax.set_axis_off()
    fig.canvas.draw()
    return artist, np.asarray(fig.canvas.buffer_rgba())[..., 0].astype(float)


def test_a_result_file_draws_right_side_up_with_a_plain_plot(tmp_path):
    from matplotlib.collections import QuadMesh

    image = torch.zeros(2, 1, 16, 16)
    image[:, :, :4] = 1000.0  # bright top rows (row 0 is the top of a CT slice)
    rec = with_coords(Reconstruction.from_samples(image, units="HU"), spacing=(0.7, 0.7), origin=(-5.0, -5.0))
    with xr.open_dataset(rec.to_netcdf(tmp_path / "ct.nc"), engine="h5netcdf") as ds:
        assert "plot() draws it right side up" in ds["y"].attrs["comment"]
        assert bool((np.diff(ds["y"].values) > 0).all())  # bottom row first, y pointing up
        artist, shown = _drawn(ds["reconstruction_mean"])
    assert isinstance(artist, QuadMesh)
    assert shown[:12].mean() > 200 and shown[-40:].mean() < 50  # bright rows drawn at the top
    back = Reconstruction.from_netcdf(tmp_path / "ct.nc").dataset
    assert back["y"].attrs == rec.dataset["y"].attrs and back.identical(rec.dataset)
    header = {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 1.0, "CRVAL2": 2.0, "CDELT1": -1e-4,
              "CDELT2": 1e-4}
    sky = with_wcs(Reconstruction.from_samples(image.flip(2)), header)  # FITS: row 0 is the bottom
    with xr.open_dataset(sky.to_netcdf(tmp_path / "sky.nc"), engine="h5netcdf") as ds:
        assert "right side up" in ds["y"].attrs["comment"]
        np.testing.assert_array_equal(ds["y"].values, np.arange(16))  # FITS rows, as they are
        _, shown = _drawn(ds["reconstruction_mean"])
    assert shown[:12].mean() > 200 and shown[-40:].mean() < 50


def test_a_stack_of_slices_shifted_in_plane_keeps_one_grid_of_their_size():
    """A sheared stack (tilted gantry): each slice's grid is shifted; the stack is not padded with NaN."""
    parts = [with_coords(Reconstruction.from_samples(torch.rand(2, 1, 3, 4)), origin=(0.5 * k, 0.0))
             for k in range(3)]
    volume = Reconstruction.stack(parts, index=[4, 5, 6])
    assert dict(volume.dataset.sizes)["y"] == 3 and np.isfinite(volume.mean.values).all()
    np.testing.assert_array_equal(volume.mean.sel(slice=6).values, parts[2].mean.values)
