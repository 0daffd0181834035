import math

import numpy as np
import pytest
import torch

from reddiff.errors import InputError
from reddiff.operators import mri


def _phantom(n=32):
    """A smooth-edged head-like magnitude image with zero background, max 1."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, n), torch.linspace(-1, 1, n), indexing="ij")
    head = ((x / 0.7) ** 2 + (y / 0.85) ** 2 < 1).float() * 0.6
    head += 0.4 * (((x - 0.2) / 0.2) ** 2 + ((y + 0.1) / 0.3) ** 2 < 1).float()
    head -= 0.3 * (((x + 0.25) / 0.15) ** 2 + ((y - 0.3) / 0.15) ** 2 < 1).float()
    return head[None, None]


def _error(x, truth):
    return float((x - truth).norm() / truth.norm())


@pytest.mark.parametrize("kind", ["random", "equispaced", "gaussian"])
def test_cartesian_masks_reach_the_acceleration_on_average(kind):
    fractions = torch.stack([mri.cartesian_mask((4, 256), kind=kind, acceleration=4, center_fraction=0.08,
                                                seed=s).mean() for s in range(40)])
    assert abs(float(fractions.mean()) - 0.25) < 0.01


@pytest.mark.parametrize("kind", ["random", "equispaced", "gaussian"])
def test_cartesian_masks_are_columns_with_a_sampled_centre_and_reproducible(kind):
    mask = mri.cartesian_mask((32, 64), kind=kind, acceleration=4, center_fraction=0.125, seed=3)
    assert bool((mask == mask[:1]).all())  # whole phase-encode columns
    assert bool(mask[:, 28:36].all())  # round(64 * 0.125) = 8 centre columns around k = 0 (index 32)
    assert torch.equal(mask, mri.cartesian_mask((32, 64), kind=kind, acceleration=4, center_fraction=0.125,
                                                seed=3))
    draws = {tuple(mri.cartesian_mask((4, 64), kind=kind, acceleration=4, center_fraction=0.125, seed=s)[0].tolist())
             for s in range(6)}
    assert len(draws) > 1


def test_gaussian_mask_samples_low_frequencies_more():
    masks = torch.stack([mri.cartesian_mask((2, 128), kind="gaussian", acceleration=4, center_fraction=0.04,
                                            seed=s)[0] for s in range(60)])
    inner, outer = masks[:, 40:88].mean(), torch.cat([masks[:, :24], masks[:, 104:]], 1).mean()
    assert inner > 2 * outer


def test_variable_density_mask_is_denser_in_the_centre():
    mask = mri.variable_density_mask((64, 64), acceleration=5, center_fraction=0.1, seed=0)
    assert abs(float(mask.mean()) - 0.2) < 0.02
    assert bool(mask[29:35, 29:35].all())
    assert float(mask[16:48, 16:48].mean()) > 2 * float(mask[:8].mean())


def test_acceleration_one_samples_everything():
    assert bool(mri.cartesian_mask((8, 8), acceleration=1, seed=0).all())
    assert bool(mri.variable_density_mask((8, 8), acceleration=1, seed=0).all())


def test_file_masks_are_accepted_as_is():
    columns = torch.tensor([1, 0, 0, 1, 1, 0, 0, 1], dtype=torch.bool)  # fastMRI files store one flag per column
    mask = mri.as_mask(columns, (4, 8))
    assert mask.shape == (4, 8) and torch.equal(mask[2], columns.float())
    m = mri.simulate(torch.rand(1, 1, 4, 8), mask=columns, sigma=0.0, seed=0)
    assert torch.equal(m.info["mask"], mask)
    deepinv_layout = mask[None, None].expand(1, 2, 4, 8)
    assert torch.equal(mri.as_mask(deepinv_layout, (4, 8)), mask)


@pytest.mark.parametrize("bad, expected", [
    (torch.ones(5), "expected (8,) column flags or (4, 8)"),
    (torch.ones(4, 7), "expected (8,) column flags or (4, 8)"),
    (torch.full((4, 8), 0.5), "other than 0 and 1"),
    (torch.zeros(4, 8), "samples nothing"),
])
def test_bad_masks_say_what_was_expected(bad, expected):
    with pytest.raises(InputError, match="mask") as err:
        mri.as_mask(bad, (4, 8))
    assert expected in str(err.value)


def test_mask_and_coil_map_size_mismatch():
    with pytest.raises(InputError, match=r"expected \(12,\) column flags or \(16, 12\)"):
        mri.mri_physics(torch.ones(16, 16), coil_maps=mri.birdcage_maps(2, (16, 12)))


@pytest.mark.parametrize("call, field", [
    (lambda: mri.cartesian_mask((8, 8), kind="radial"), "kind"),
    (lambda: mri.cartesian_mask((8, 8), acceleration=0.5), "acceleration"),
    (lambda: mri.cartesian_mask((8, 8), acceleration=8, center_fraction=0.5), "center_fraction"),
    (lambda: mri.simulate(torch.rand(1, 3, 8, 8)), "image"),
    (lambda: mri.simulate(torch.rand(8, 8)), "image"),
    (lambda: mri.simulate(torch.full((1, 1, 8, 8), float("nan"))), "image"),
    (lambda: mri.simulate(torch.rand(1, 1, 8, 8), coils=0), "coils"),
    (lambda: mri.simulate(torch.rand(1, 1, 8, 8), sigma=-1.0), "sigma"),
    (lambda: mri.simulate(torch.rand(1, 1, 8, 8), mask="spiral"), "mask"),
    (lambda: mri.mri_physics(torch.ones(8, 8), sigma=0.0), "sigma"),
])
def test_bad_arguments_name_the_field(call, field):
    with pytest.raises(InputError, match=rf"\[{field}\] .*(expected|must)"):
        call()


def test_fft_is_centred_and_orthonormal_as_fastmri():
    n = 16
    x = torch.zeros(1, 2, n, n)
    x[:, 0] = 1.0
    k = mri.mri_physics(torch.ones(n, n)).A(x)
    assert float(k[0, 0, n // 2, n // 2]) == pytest.approx(n)  # DC = sum / sqrt(N), at the centre
    assert float(k.abs().sum()) == pytest.approx(n, rel=1e-5)
    z = torch.randn(1, 2, n, n, generator=torch.Generator().manual_seed(0))
    assert float(mri.mri_physics(torch.ones(n, n)).A(z).norm()) == pytest.approx(float(z.norm()), rel=1e-5)


def test_birdcage_maps_are_normalised_and_each_coil_sees_its_own_side():
    maps = mri.birdcage_maps(8, (24, 24))
    torch.testing.assert_close((maps.abs() ** 2).sum(0), torch.ones(24, 24))
    peaks = {int(m.abs().argmax()) for m in maps}
    assert len(peaks) == 8


def test_simulate_noise_level_and_sampling():
    sigma = 0.05
    m = mri.simulate(_phantom(32), acceleration=4, center_fraction=0.125, mask="equispaced", coils=4, sigma=sigma,
                     seed=0)
    mask = m.info["mask"].bool()
    residual = m.y - m.physics.A(m.x_true)
    assert float(residual[..., ~mask].abs().max()) == 0.0  # unsampled k-space stays zero
    measured = float(residual[..., mask].std())
    assert abs(measured - sigma) < 0.1 * sigma
    assert m.physics.data_term.sigma == sigma
    assert m.x_true.shape == (1, 2, 32, 32) and float(m.x_true[:, 1].abs().max()) == 0.0  # zero phase
    assert torch.equal(m.info["coil_maps"], mri.birdcage_maps(4, (32, 32)))


def test_simulate_is_reproducible_from_its_seed():
    a = mri.simulate(_phantom(16), coils=2, center_fraction=0.25, seed=7)
    b = mri.simulate(_phantom(16), coils=2, center_fraction=0.25, seed=7)
    c = mri.simulate(_phantom(16), coils=2, center_fraction=0.25, seed=8)
    assert torch.equal(a.y, b.y) and not torch.equal(a.y, c.y)


def test_single_coil_simulation_keeps_deepinv_layout():
    m = mri.simulate(torch.rand(1, 2, 16, 16), acceleration=2, center_fraction=0.25, seed=0)
    assert m.y.shape == (1, 2, 16, 16) and "coil_maps" not in m.info


@pytest.mark.parametrize("acceleration", [2, 3])
def test_sense_and_tv_beat_zero_filling(acceleration):
    # measured (32 px, 8 coils, sigma 0.01): zero-filled 0.22-0.26; SENSE 0.10 at R=2 (0.32 at R=3: the
    # g-factor of 8 birdcage coils at this size amplifies noise, so SENSE is only asked to win at R=2);
    # TV 0.02-0.03
    m = mri.simulate(_phantom(32), acceleration=acceleration, center_fraction=0.125, mask="equispaced", coils=8,
                     sigma=0.01, seed=0)
    zf = _error(mri.zero_filled(m.y, m.physics), m.x_true)
    tv = _error(mri.tv_reconstruction(m.y, m.physics, lam=0.01, iterations=100), m.x_true)
    assert tv < 0.25 * zf, (tv, zf)
    if acceleration == 2:
        sense = _error(mri.sense_cg(m.y, m.physics, iterations=30), m.x_true)
        assert sense < 0.6 * zf, (sense, zf)


def test_tv_beats_zero_filling_single_coil():
    truth = _phantom(32)
    m = mri.simulate(truth, acceleration=2.5, center_fraction=0.15, mask="random", sigma=0.02, seed=1)
    zf = _error(mri.zero_filled(m.y, m.physics), m.x_true)
    tv = _error(mri.tv_reconstruction(m.y, m.physics, lam=0.005, iterations=150), m.x_true)
    assert tv < 0.5 * zf, (tv, zf)  # measured 0.09 vs 0.27


def test_espirit_maps_match_the_true_maps_and_give_the_same_sense():
    truth = _phantom(32)
    m = mri.simulate(truth, acceleration=2, center_fraction=0.375, mask="equispaced", coils=6, sigma=0.0, seed=0)
    estimated = mri.estimate_sensitivity_maps(m.y, kernel_size=5)
    support = truth[0, 0] > 0
    inner = (estimated.conj() * m.info["coil_maps"]).sum(0).abs()
    assert float(inner[support].min()) > 0.95  # same subspace at every object pixel (maps agree up to phase)
    physics = mri.mri_physics(m.info["mask"], coil_maps=estimated)
    magnitude = mri.sense_cg(m.y, physics, iterations=30).norm(dim=1)[0]
    assert float((magnitude - truth[0, 0]).norm() / truth.norm()) < 0.05


def test_espirit_kernel_gram_is_the_sum_over_kernels_in_the_image_domain():
    from reddiff.operators.mri import MRIMixin, _kernel_gram

    kernels = torch.randn(5, 3, 4, 3, dtype=torch.complex128, generator=torch.Generator().manual_seed(0))
    height, width = 16, 12
    padded = torch.zeros(5, 3, height, width, dtype=torch.complex128)
    padded[..., height // 2 - 2:height // 2 + 2, width // 2 - 1:width // 2 + 2] = kernels
    images = MRIMixin.ifft(padded) * math.sqrt(height * width / 12)  # one image per kernel and coil
    vectors = images.permute(2, 3, 1, 0).reshape(height * width, 3, 5)
    explicit = vectors @ vectors.mH
    assert torch.allclose(_kernel_gram(kernels, (height, width)).to(torch.complex128), explicit, atol=1e-5)


def test_espirit_default_kernel_is_square_and_a_third_of_the_calibration_columns():
    from reddiff.operators.mri import _kernel_shape

    assert _kernel_shape(None, 24, 10) == (3, 3)
    assert _kernel_shape(None, 24, 24) == (6, 6)  # a fastMRI knee's 24 of its 29 central columns
    assert _kernel_shape(None, 24, 6) == (3, 3)
    assert _kernel_shape(5, 24, 10) == (5, 5)
    assert _kernel_shape((12, 3), 64, 10) == (12, 3)


def test_espirit_with_a_padded_readout_or_a_tall_kernel_fits_an_object_that_fills_the_field_of_view():
    size = 48
    yy, xx = np.mgrid[-1:1:size * 1j, -1:1:size * 1j]
    image = 0.6 + 0.3 * np.cos(3 * xx + 1) * np.sin(2 * yy) + 0.2 * ((xx / 0.5) ** 2 + (yy / 0.6) ** 2 < 1)
    m = mri.simulate(torch.as_tensor(image, dtype=torch.float32)[None, None], acceleration=3,
                     center_fraction=0.25, mask="random", coils=8, sigma=0.0, seed=0)

    def misfit(**settings):
        physics = mri.mri_physics(m.info["mask"], coil_maps=mri.estimate_sensitivity_maps(m.y, **settings))
        return float((physics.A(mri.sense_cg(m.y, physics, iterations=100)) - m.y).norm() / m.y.norm())

    # noise-free k-space, so the least-squares misfit is the maps' model error alone
    on_the_grid = misfit(readout_padding=1)  # measured 0.051
    assert misfit() < 0.5 * on_the_grid  # twice the readout field of view (the default): 0.011
    columns = mri._calibration_width(m.info["mask"].reshape(-1, size).bool().any(0))  # 12
    tall = misfit(calibration_size=(size, columns), kernel_size=(size // 4, columns // 3), readout_padding=1)
    assert tall < 0.5 * on_the_grid  # every readout row, a 12 x 4 kernel: 0.013


def test_jsense_refits_the_maps_of_an_object_cut_by_the_phase_encode_edges():
    """ESPIRiT's periodic maps go wrong within a few columns of the phase-encode edges of an object cut
    there; refitted on polynomials with the image, the maps and the early-stopped SENSE image recover."""
    size = 48
    yy, xx = np.mgrid[-1:1:size * 1j, -1:1:size * 1j]
    image = (0.5 + 0.3 * np.cos(3 * xx + 1) * np.sin(2 * yy)) * ((yy / 0.9) ** 2 + (xx / 1.4) ** 2 < 1)
    m = mri.simulate(torch.as_tensor(image, dtype=torch.float32)[None, None], acceleration=4,
                     center_fraction=0.16, mask="random", coils=8, sigma=0.01, seed=0)
    espirit = mri.estimate_sensitivity_maps(m.y)
    refined = mri.refine_sensitivity_maps(m.y, m.info["mask"], espirit)
    truth = m.info["coil_maps"]
    edges = torch.as_tensor(image > 0.05)[:, [0, 1, 2, -3, -2, -1]]

    def agreement(maps):  # |<maps, true maps>| at the object's pixels in the outer three columns; 1 = same up to phase
        return float((truth.conj() * maps).sum(0).abs()[:, [0, 1, 2, -3, -2, -1]][edges].mean())

    def error(maps):
        physics = mri.mri_physics(m.info["mask"], coil_maps=maps)
        return float((mri.sense_cg(m.y, physics, iterations=10).norm(dim=1) - m.x_true.norm(dim=1)).norm())

    assert agreement(espirit) < 0.97 < 0.99 < agreement(refined)  # measured 0.950 and 0.995
    assert error(refined) < 0.8 * error(espirit)  # measured 0.64x (the true maps: 0.55x)


def test_jsense_checks_its_maps_and_settings():
    m = mri.simulate(_phantom(16), acceleration=2, center_fraction=0.25, coils=2, seed=0)
    maps = m.info["coil_maps"]
    with pytest.raises(InputError, match=r"\(2, 16, 16\)"):
        mri.refine_sensitivity_maps(m.y, m.info["mask"], maps[:1])
    with pytest.raises(InputError, match="degree"):
        mri.refine_sensitivity_maps(m.y, m.info["mask"], maps, degree=0)


def test_espirit_needs_a_calibration_region():
    m = mri.simulate(_phantom(32), acceleration=4, center_fraction=0.0625, mask="equispaced", coils=4, seed=0)
    with pytest.raises(InputError, match="calibration"):
        mri.estimate_sensitivity_maps(m.y)


def test_poisson_disc_mask_spreads_samples_evenly():
    shape = (64, 64)
    disc = mri.poisson_disc_mask(shape, acceleration=4, center_fraction=0.1, seed=0)
    bernoulli = mri.variable_density_mask(shape, acceleration=4, center_fraction=0.1, decay=1.0, seed=0)
    assert abs(float(disc.mean()) - 0.25) < 0.02
    assert bool(disc[30:34, 30:34].all())
    assert torch.equal(disc, mri.poisson_disc_mask(shape, acceleration=4, center_fraction=0.1, seed=0))

    def touching(mask):  # kept outer points with a kept 4-neighbour: clusters
        outer = mask.clone()
        outer[26:38, 26:38] = 0
        neighbours = torch.zeros_like(outer)
        neighbours[1:] += outer[:-1]
        neighbours[:-1] += outer[1:]
        neighbours[:, 1:] += outer[:, :-1]
        neighbours[:, :-1] += outer[:, 1:]
        return float(((neighbours > 0) & (outer > 0)).sum() / outer.sum())

    assert touching(disc) < 0.5 * touching(bernoulli)  # measured 0.01 vs 0.7
    assert mri.simulate(torch.rand(1, 1, 16, 16), mask="poisson-disc", center_fraction=0.125, seed=0).y.shape == (
        1, 2, 16, 16)
