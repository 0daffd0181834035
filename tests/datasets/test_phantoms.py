import numpy as np
import pytest

from reddiff.datasets.phantoms import AIR_HU, BONE_HU, ellipse_phantom
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
    first_bone = np.argmax(row >= BONE_HU[0])
    assert (row[:first_bone] == AIR_HU).all()  # air, then the skull


def test_phantom_rejects_bad_arguments():
    with pytest.raises(InputError, match="shape"):
        ellipse_phantom((4, 64))
    with pytest.raises(InputError, match="n_ellipses"):
        ellipse_phantom((16, 16), n_ellipses=-1)
