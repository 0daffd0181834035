import numpy as np
import pytest

from reddiff.datasets.phantoms import AIR_HU, BONE_HU, WIDE_HU, body_phantom, ellipse_phantom
from reddiff.errors import InputError


def test_phantom_is_reproducible_and_seed_dependent():
    a = ellipse_phantom((32, 48), seed=3)
    assert a.shape == (32, 48) and a.dtype == np.float32
    np.testing.assert_array_equal(a, ellipse_phantom((32, 48), seed=3))
    assert not np.array_equal(a, ellipse_phantom((32, 48), seed=4))


def test_phantom_has_air_outside_a_bone_ring_and_tissue_inside():
    image = ellipse_phantom((64, 64), n_ellipses=0, seed=0)
    assert (image[0] == AIR_HU).all() and (image[:, 0] == AIR_HU).all()
    bone = image >= BONE_HU[0]
    assert 0.02 < bone.mean() < 0.3
    assert 20 <= image[32, 32] <= 45  # brain at the centre
    row = image[32]
    first_tissue, first_bone = np.argmax(row > AIR_HU), np.argmax(row >= BONE_HU[0])
    assert (row[:first_tissue] == AIR_HU).all() and first_bone - first_tissue <= 1  # air, then the skull


def test_phantom_edges_hold_the_partial_volume_mixture():
    sharp = ellipse_phantom((64, 64), n_ellipses=0, supersample=1, seed=0)
    mixed = ellipse_phantom((64, 64), n_ellipses=0, seed=0)
    levels = np.unique(sharp)
    assert len(levels) == 3  # air, bone, brain: every pixel a point sample
    between = (mixed > AIR_HU) & (mixed < levels[-1]) & ~np.isin(mixed, levels)
    assert 0.02 < between.mean() < 0.2  # the ring's edge pixels, not the interior
    np.testing.assert_allclose(mixed.mean(), ellipse_phantom((64, 64), n_ellipses=0, supersample=16, seed=0).mean(),
                               rtol=0.01)  # area fractions converge
    with pytest.raises(InputError, match="supersample"):
        ellipse_phantom((16, 16), supersample=0)


def test_phantom_rejects_bad_arguments():
    with pytest.raises(InputError, match="shape"):
        ellipse_phantom((4, 64))
    with pytest.raises(InputError, match="n_ellipses"):
        ellipse_phantom((16, 16), n_ellipses=-1)


def test_phantom_interior_follows_the_given_hu_ranges():
    image = ellipse_phantom((64, 64), n_ellipses=0, brain_hu=(-800.0, -790.0), seed=0)
    assert -800 <= image[32, 32] <= -790
    wide = [ellipse_phantom((64, 64), brain_hu=WIDE_HU, inner_hu=WIDE_HU, seed=s)[32, 32] for s in range(20)]
    assert min(wide) < -300 and max(wide) > 300  # any contrast, not a head's 20-45 HU


def test_body_phantom_has_the_tissues_of_a_thorax_or_abdomen():
    images = [body_phantom((96, 96), seed=s) for s in range(12)]
    np.testing.assert_array_equal(images[0], body_phantom((96, 96), seed=0))
    for image in images:
        assert image.dtype == np.float32 and (image[0] == AIR_HU).all()
        body = image > -990
        assert 0.3 < body.mean() < 0.85
        assert (image > 250).any()  # ribs and spine
        assert (np.abs(image[body]) < 150).mean() > 0.3  # fat, muscle and organs
    lungs = [((image > -950) & (image < -650)).mean() for image in images]
    assert max(lungs) > 0.1 and min(lungs) < 0.05  # thoraxes with lungs, abdomens with a little bowel gas
    with pytest.raises(InputError, match="shape"):
        body_phantom((4, 64))
