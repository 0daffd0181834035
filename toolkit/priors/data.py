r"""Training data for priors: images from files or arrays, random augmented patches.

An *image* here is a 2-D array in physical units, real or complex. Files are read
with :func:`reddiff.datasets.read_image` (volumes and stacks give one image per
slice). For a 2-channel (complex) prior, real images get a smooth random phase
per patch (:func:`smooth_random_phase`), which is how magnitude-only data (e.g. a
T1 template) teaches a prior for complex MRI images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from .base import ValueTransform


def load_images(sources) -> list[np.ndarray]:
    """Read training images from files, folders and arrays.

    Parameters
    ----------
    sources : sequence of (str, os.PathLike or numpy.ndarray)
        Image files in any format :func:`reddiff.datasets.read_image` reads, folders
        (every readable file below them, in sorted order; unknown formats skipped)
        or arrays ``(H, W)`` / ``(N, H, W)``, real or complex, in physical units.

    Returns
    -------
    list of numpy.ndarray
        2-D images, float32 or complex64.

    Examples
    --------
    >>> images = load_images([np.zeros((2, 16, 16))])
    >>> len(images), images[0].shape
    (2, (16, 16))
    """
    if isinstance(sources, (str, Path, np.ndarray)):
        sources = [sources]
    images = []
    for source in sources:
        for array in _arrays(source):
            images.extend(_slices(np.asarray(array), source))
    if not images:
        raise InputError("no training images found", field="sources")
    return images


def _arrays(source):
    from reddiff.datasets import detect_format, read_image

    if isinstance(source, np.ndarray):
        return [source]
    path = Path(source)
    if not path.is_dir():
        return [read_image(path).array]
    arrays = []
    for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        try:
            detect_format(file)
        except InputError:
            continue
        arrays.append(read_image(file).array)
    return arrays


def _slices(array: np.ndarray, source) -> list[np.ndarray]:
    where = "array" if isinstance(source, np.ndarray) else str(source)
    if array.ndim not in (2, 3):
        raise InputError(f"{where}: expected a 2-D image or a 3-D stack, got shape {array.shape}",
                         field="sources")
    dtype = np.complex64 if np.iscomplexobj(array) else np.float32
    array = array.astype(dtype)
    if not np.isfinite(array).all():
        raise InputError(f"{where}: image has NaN or infinite values", field="sources")
    return list(array) if array.ndim == 3 else [array]


def smooth_random_phase(size: int, rng: np.random.Generator, *, max_gradient: float = 0.05) -> np.ndarray:
    r"""A random smooth phase map of shape ``(size, size)`` in radians.

    Notes
    -----
    With pixel coordinates :math:`r` centred on the patch,

    .. math:: \phi(r) = \phi_0 + g^\top r + \tfrac{1}{2 P} r^\top Q r,

    :math:`\phi_0 \sim U[0, 2\pi)`, :math:`g_i \sim U[-g_{max}, g_{max}]` (radians per
    pixel) and :math:`Q_{ij} \sim U[-g_{max}, g_{max}]` (symmetric), so the phase drifts
    by at most a few radians across a 100-pixel field of view, as in MRI.

    Examples
    --------
    >>> phase = smooth_random_phase(8, np.random.default_rng(0))
    >>> phase.shape, bool(np.ptp(phase) < 2 * np.pi)
    ((8, 8), True)
    """
    r = np.arange(size) - (size - 1) / 2
    y, x = np.meshgrid(r, r, indexing="ij")
    g = rng.uniform(-max_gradient, max_gradient, size=2)
    q = rng.uniform(-max_gradient, max_gradient, size=3)
    quadratic = (q[0] * y**2 + 2 * q[1] * x * y + q[2] * x**2) / (2 * size)
    return (rng.uniform(0, 2 * np.pi) + g[0] * y + g[1] * x + quadratic).astype(np.float32)


class PatchSampler:
    """Random square patches of the training images, augmented, in network units.

    Parameters
    ----------
    images : list of numpy.ndarray
        2-D images in physical units (see :func:`load_images`), each at least
        ``patch_size`` on a side.
    patch_size : int
        Side of the square patches.
    channels : {1, 2}
        1: real images; 2: complex as (real, imag), real images get a random phase.
    transform : ValueTransform
        Physical to network units, applied to each patch.

    Notes
    -----
    A patch position is uniform over all positions of all images (an image is
    picked with probability proportional to its number of patch positions), then
    one of the 8 flips/rotations of the square is applied at random.

    Examples
    --------
    >>> sampler = PatchSampler([np.ones((20, 20))], patch_size=8, channels=2, transform=ValueTransform())
    >>> batch = sampler.sample(4, np.random.default_rng(0))
    >>> batch.shape, round(float(batch.pow(2).sum(1).sqrt().mean()), 3)  # magnitude kept
    (torch.Size([4, 2, 8, 8]), 1.0)
    >>> sampler.value_range()  # real and imaginary parts span [-1, 1]
    (-1.0, 1.0)
    """

    def __init__(self, images, *, patch_size: int, channels: int, transform: ValueTransform):
        if channels not in (1, 2):
            raise InputError(f"channels must be 1 (real) or 2 (complex), got {channels!r}",
                             field="channels")
        small = [i for i, im in enumerate(images) if min(im.shape) < patch_size]
        if small:
            raise InputError(f"image {small[0]} has shape {images[small[0]].shape}, smaller than "
                             f"patch_size={patch_size}", field="patch_size")
        if channels == 1 and any(np.iscomplexobj(im) for im in images):
            raise InputError("complex images need channels=2", field="channels")
        self.images, self.patch_size, self.channels, self.transform = images, patch_size, channels, transform
        positions = np.array([(im.shape[0] - patch_size + 1) * (im.shape[1] - patch_size + 1)
                              for im in images], dtype=np.float64)
        self.weights = positions / positions.sum()

    def value_range(self) -> tuple[float, float]:
        """Smallest and largest pixel value of the images in network units (per channel part)."""
        ends = [(-np.abs(im).max(), np.abs(im).max()) if self.channels == 2 else (im.min(), im.max())
                for im in self.images]
        z = self.transform.to_model(torch.tensor(ends, dtype=torch.float32))
        return float(z.min()), float(z.max())

    def sample(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        """``n`` patches ``(n, channels, P, P)`` in network units, float32."""
        return torch.stack([self._patch(rng) for _ in range(n)])

    def _patch(self, rng: np.random.Generator) -> torch.Tensor:
        image = self.images[rng.choice(len(self.images), p=self.weights)]
        p = self.patch_size
        top = rng.integers(image.shape[0] - p + 1)
        left = rng.integers(image.shape[1] - p + 1)
        patch = np.rot90(image[top:top + p, left:left + p], k=rng.integers(4))
        if rng.integers(2):
            patch = patch[:, ::-1]
        if self.channels == 2:
            if not np.iscomplexobj(patch):
                patch = patch * np.exp(1j * smooth_random_phase(p, rng))
            patch = np.stack([patch.real, patch.imag])
        else:
            patch = patch[None]
        return self.transform.to_model(torch.from_numpy(np.ascontiguousarray(patch, dtype=np.float32)))
