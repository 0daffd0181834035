"""fastMRI HDF5 files: raw k-space, sampling mask, reference images and ISMRMRD header.

The layout (https://github.com/facebookresearch/fastMRI, "Dataset"):

``kspace``
    complex64, ``(slices, coils, H, W)`` multi-coil or ``(slices, H, W)`` single-coil;
    ``H`` is the readout direction (ISMRMRD ``x``), ``W`` the phase-encode one (``y``).
``mask`` (undersampled test/challenge files only)
    ``(W,)`` phase-encode lines that were acquired (k-space is zero elsewhere).
``reconstruction_rss`` / ``reconstruction_esc`` (training/validation files)
    float32 ``(slices, h, w)`` reference images, cropped to the recon matrix.
``ismrmrd_header``
    the ISMRMRD XML header as bytes: encoded and recon matrix sizes and fields of view.
root attributes
    ``acquisition``, ``max``, ``norm``, ``patient_id`` (and ``acceleration``,
    ``num_low_frequency`` in undersampled files).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reddiff.errors import InputError
from reddiff.operators.base import check_memory

from ._io import input_file, reading, write_file

TARGETS = ("reconstruction_rss", "reconstruction_esc")


#: The ISMRMRD XML namespace of ``ismrmrd_header``.
ISMRMRD_NAMESPACE = "http://www.ismrm.org/ISMRMRD"
#: Proton resonance frequency written when the header has none (a nominal 3 T scanner):
#: ISMRMRD requires ``experimentalConditions/H1resonanceFrequency_Hz``, which a simulation
#: does not model.
NOMINAL_H1_RESONANCE_HZ = 127_740_000
_UNSIGNED_SHORT = 65535


@dataclass(frozen=True)
class MRIHeader:
    """Geometry from the ISMRMRD header; sizes and fields of view as ``(x, y, z)``.

    ``x`` is the readout (k-space rows ``H``), ``y`` the phase encode (columns ``W``).

    Attributes
    ----------
    encoded_matrix, encoded_fov_mm : tuple
        The k-space grid (``encodedSpace``): ``(H, W, 1)`` and its field of view in mm.
        Readout-oversampled files (real fastMRI brain and knee) have ``x`` twice the
        recon matrix's, and twice its field of view.
    recon_matrix, recon_fov_mm : tuple
        The image grid fastMRI's references are on (``reconSpace``).
    phase_encode_limits : (int, int, int) or None
        ``(minimum, maximum, center)`` of ``encodingLimits/kspace_encoding_step_1``, the
        acquired phase-encode lines (fastMRI derives its zero padding from them); None
        when the file has none: written as ``(0, W - 1, W // 2)``, all columns.
    h1_resonance_frequency_hz : int or None
        ``experimentalConditions/H1resonanceFrequency_Hz``; None when the file has none:
        written as :data:`NOMINAL_H1_RESONANCE_HZ`.
    """

    encoded_matrix: tuple[int, int, int]
    encoded_fov_mm: tuple[float, float, float]
    recon_matrix: tuple[int, int, int]
    recon_fov_mm: tuple[float, float, float]
    phase_encode_limits: tuple[int, int, int] | None = None
    h1_resonance_frequency_hz: int | None = None

    @property
    def pixel_spacing_mm(self) -> tuple[float, float]:
        """``(dy, dx)`` of the image on the k-space grid: rows along x, columns along y."""
        return (self.encoded_fov_mm[0] / self.encoded_matrix[0],
                self.encoded_fov_mm[1] / self.encoded_matrix[1])

    @property
    def crop_shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the recon matrix, the centre crop fastMRI evaluates on."""
        return self.recon_matrix[0], self.recon_matrix[1]

    @property
    def limits(self) -> tuple[int, int, int]:
        """``(minimum, maximum, center)`` of the phase-encode lines, as written."""
        if self.phase_encode_limits is not None:
            return tuple(int(v) for v in self.phase_encode_limits)
        width = int(self.encoded_matrix[1])
        return 0, max(width - 1, 0), width // 2

    def to_xml(self) -> bytes:
        """The ISMRMRD header holding this geometry, valid against the ISMRMRD schema.

        It has what the schema requires (``experimentalConditions``; ``encoding`` with
        ``encodedSpace``, ``reconSpace``, ``encodingLimits`` and ``trajectory``) and what
        fastMRI's ``SliceDataset`` reads (``kspace_encoding_step_1`` ``center`` and
        ``maximum``, both matrix sizes).

        Examples
        --------
        >>> header = MRIHeader((32, 16, 1), (256.0, 128.0, 5.0), (16, 16, 1), (128.0, 128.0, 5.0))
        >>> root = ET.fromstring(header.to_xml())
        >>> root.find("{*}encoding/{*}encodingLimits/{*}kspace_encoding_step_1/{*}center").text
        '8'
        """
        self._check()
        root = ET.Element("ismrmrdHeader", xmlns=ISMRMRD_NAMESPACE)
        conditions = ET.SubElement(root, "experimentalConditions")
        frequency = self.h1_resonance_frequency_hz
        ET.SubElement(conditions, "H1resonanceFrequency_Hz").text = str(
            int(NOMINAL_H1_RESONANCE_HZ if frequency is None else frequency))
        encoding = ET.SubElement(root, "encoding")
        for space, matrix, fov in (("encodedSpace", self.encoded_matrix, self.encoded_fov_mm),
                                   ("reconSpace", self.recon_matrix, self.recon_fov_mm)):
            node = ET.SubElement(encoding, space)
            _xyz(ET.SubElement(node, "matrixSize"), (str(int(v)) for v in matrix))
            _xyz(ET.SubElement(node, "fieldOfView_mm"), (repr(float(v)) for v in fov))
        limits = ET.SubElement(encoding, "encodingLimits")
        for name, values in (("kspace_encoding_step_1", self.limits), ("kspace_encoding_step_2", (0, 0, 0))):
            node = ET.SubElement(limits, name)
            for tag, value in zip(("minimum", "maximum", "center"), values):
                ET.SubElement(node, tag).text = str(int(value))
        ET.SubElement(encoding, "trajectory").text = "cartesian"
        return ET.tostring(root, xml_declaration=True, encoding="utf-8")

    def _check(self) -> None:
        for name in ("encoded_matrix", "recon_matrix", "phase_encode_limits"):
            values = getattr(self, name)
            if values is not None and not all(0 <= int(v) <= _UNSIGNED_SHORT for v in values):
                raise InputError(f"{name} {tuple(values)} is outside ISMRMRD's 0..{_UNSIGNED_SHORT}",
                                 field="ismrmrd_header")
        for name in ("encoded_fov_mm", "recon_fov_mm"):
            if not np.isfinite(np.asarray(getattr(self, name), dtype=float)).all():
                raise InputError(f"{name} {tuple(getattr(self, name))} is not finite", field="ismrmrd_header")


def _xyz(parent, texts) -> None:
    for axis, text in zip("xyz", texts):
        ET.SubElement(parent, axis).text = text


@dataclass(eq=False)
class MRIData:
    """k-space and metadata from a fastMRI file.

    Attributes
    ----------
    kspace : numpy.ndarray
        complex64 ``(slices, coils, H, W)`` (``coils == 1`` for single-coil files),
        zero on lines that were not acquired.
    mask : numpy.ndarray or None
        bool ``(W,)``: acquired phase-encode lines; None when fully sampled.
    multicoil : bool
    target : numpy.ndarray or None
        float32 ``(slices, h, w)`` reference image (RSS or ESC) of the chosen slices.
    target_name : str or None
    header : MRIHeader or None
    attrs : dict
        Root attributes (``acquisition``, ``max``, ``norm``, ``patient_id``, ...).
    slices : numpy.ndarray
        Indices of the slices read.
    n_slices : int
        Number of slices in the file.
    retrospective : bool
        True when the mask was drawn here (``acceleration=``) on a fully sampled file.
    path : pathlib.Path or None
    """

    kspace: np.ndarray
    mask: np.ndarray | None
    multicoil: bool
    target: np.ndarray | None = None
    target_name: str | None = None
    header: MRIHeader | None = None
    attrs: dict = field(default_factory=dict)
    slices: np.ndarray | None = None
    n_slices: int | None = None
    retrospective: bool = False
    path: Path | None = None

    @property
    def pixel_spacing_mm(self) -> tuple[float, float] | None:
        """``(dy, dx)`` of the image on the k-space grid, from the header."""
        return None if self.header is None else self.header.pixel_spacing_mm

    @property
    def image_shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the image grid: fastMRI's centre crop of the k-space grid.

        The target's shape, else the header's recon matrix (as fastMRI's transforms crop),
        each axis at most the k-space grid's; the k-space grid itself when neither is known.
        A readout-oversampled file (``H = 2 h``) gives ``(h, w)``.

        Examples
        --------
        >>> data = MRIData(np.zeros((1, 2, 32, 16), np.complex64), None, multicoil=True,
        ...                target=np.zeros((1, 16, 16), np.float32))
        >>> data.image_shape
        (16, 16)
        """
        grid = tuple(int(n) for n in self.kspace.shape[-2:])
        if self.target is not None:
            crop = self.target.shape[-2:]
        elif self.header is not None:
            crop = self.header.crop_shape
        else:
            return grid
        return tuple(min(int(c), g) if int(c) > 0 else g for c, g in zip(crop, grid))


def read_fastmri(path, *, slices=None, acceleration: float | None = None,
                 center_fraction: float = 0.08, seed=None) -> MRIData:
    """Read a fastMRI HDF5 file (single- or multi-coil).

    Parameters
    ----------
    path : str or os.PathLike
    slices : int, slice or sequence of int, optional
        Which slices to read (default all).
    acceleration : float, optional
        Undersample a fully sampled file retrospectively by this factor (random
        phase-encode lines plus a fully sampled centre, :func:`column_mask`). Not
        allowed for a file that has its own mask.
    center_fraction : float
        Fraction of central lines always kept when undersampling retrospectively.
    seed : int or torch.Generator, optional
        Randomness of the retrospective mask.

    Returns
    -------
    MRIData

    Notes
    -----
    With mask :math:`m \\in \\{0,1\\}^W` the returned k-space is
    :math:`y_{s,c,h,w} = m_w\\,k_{s,c,h,w}`. A file with zero-filled columns and no
    ``mask`` dataset is undersampled: its mask is the set of non-zero columns.

    Examples
    --------
    >>> import tempfile, os, h5py
    >>> path = os.path.join(tempfile.mkdtemp(), "file.h5")
    >>> with h5py.File(path, "w") as f:
    ...     f["kspace"] = np.ones((3, 4, 8, 6), np.complex64)
    >>> read_fastmri(path, slices=[2]).kspace.shape
    (1, 4, 8, 6)
    """
    path = input_file(path)
    with reading(path, "fastMRI HDF5 file"):
        data = _read(path, slices)
    if data.mask is not None and acceleration is not None:
        raise InputError("the file is already undersampled (it has a mask); acceleration= is for "
                         "fully sampled files", path=path, field="mask")
    if acceleration is not None:
        data.mask = column_mask(data.kspace.shape[-2:], acceleration=acceleration,
                                center_fraction=center_fraction, seed=seed)
        data.kspace = data.kspace * data.mask
        data.retrospective = True
    return data


def column_mask(shape, *, acceleration: float, center_fraction: float = 0.08, seed=None) -> np.ndarray:
    """Random phase-encode columns plus a fully sampled centre (deepinv's ``RandomMaskGenerator``).

    Parameters
    ----------
    shape : (int, int)
        k-space ``(H, W)``; columns (``W``) are phase-encode lines.
    acceleration : float
        Undersampling factor, at least 1.
    center_fraction : float
        Fraction of central columns always kept, in ``[0, 1]``.
    seed : int or torch.Generator, optional

    Returns
    -------
    numpy.ndarray
        bool ``(W,)``, True for acquired columns (about ``W / acceleration`` of them).

    Examples
    --------
    >>> m = column_mask((16, 64), acceleration=4, seed=0)
    >>> int(m.sum()), bool(m[32])
    (16, True)
    """
    import torch
    from deepinv.physics.generator import RandomMaskGenerator

    if not (np.isfinite(acceleration) and acceleration >= 1):
        raise InputError(f"acceleration must be at least 1, got {acceleration!r}", field="acceleration")
    if not 0 <= center_fraction <= 1:
        raise InputError(f"center_fraction must be in [0, 1], got {center_fraction!r}", field="center_fraction")
    rng = seed if isinstance(seed, torch.Generator) else torch.Generator()
    if not isinstance(seed, torch.Generator) and seed is not None:
        rng.manual_seed(int(seed))
    generator = RandomMaskGenerator(tuple(int(n) for n in shape), acceleration=acceleration,
                                    center_fraction=center_fraction, rng=rng)
    return generator.step(batch_size=1)["mask"][0, 0, 0].numpy().astype(bool)


def _read(path: Path, slices) -> MRIData:
    import h5py

    with h5py.File(path, "r") as f:
        if "kspace" not in f or not isinstance(f["kspace"], h5py.Dataset):
            raise InputError("no 'kspace' dataset (not a fastMRI file)", path=path, field="kspace")
        dset = f["kspace"]
        if dset.ndim not in (3, 4) or not np.issubdtype(dset.dtype, np.complexfloating):
            raise InputError(f"expected complex (slices, [coils,] H, W), got {dset.dtype} {dset.shape}",
                             path=path, field="kspace")
        dset_slices = dset.shape[0]
        index = _slice_index(slices, dset_slices, path)
        check_memory(3 * len(index) * 8 * int(np.prod(dset.shape[1:], dtype=np.float64)),
                     f"{len(index)} k-space slice(s) of {dset.shape[1:]}", field="kspace", path=path)
        kspace = dset[np.sort(index)][np.argsort(np.argsort(index))].astype(np.complex64)
        multicoil = dset.ndim == 4
        if not multicoil:
            kspace = kspace[:, None]
        mask = _mask(f, kspace, path)
        target_name = next((t for t in TARGETS if t in f), None)
        target = None
        if target_name is not None:
            ref = f[target_name]
            if ref.ndim != 3 or ref.shape[0] != dset.shape[0]:
                raise InputError(f"expected ({dset.shape[0]}, h, w), got {ref.shape}", path=path,
                                 field=target_name)
            target = ref[np.sort(index)][np.argsort(np.argsort(index))].astype(np.float32)
        header = _header(f["ismrmrd_header"][()], path) if "ismrmrd_header" in f else None
        attrs = {k: _plain(v) for k, v in f.attrs.items()}
    if not np.isfinite(kspace.view(np.float32)).all():
        raise InputError("k-space has NaN or infinite values", path=path, field="kspace")
    return MRIData(kspace=kspace, mask=mask, multicoil=multicoil, target=target,
                   target_name=target_name, header=header, attrs=attrs, slices=index,
                   n_slices=int(dset_slices), path=path)


def _slice_index(slices, n: int, path: Path) -> np.ndarray:
    if slices is None:
        return np.arange(n)
    try:
        index = np.arange(n)[slices]
    except (IndexError, TypeError, ValueError) as err:
        raise InputError(f"cannot pick slices {slices!r} from {n}", path=path, field="slices") from err
    index = np.atleast_1d(index)
    if index.size == 0:
        raise InputError(f"slices {slices!r} selects none of {n}", path=path, field="slices")
    if len(np.unique(index)) != index.size:
        raise InputError(f"slices {slices!r} repeats a slice", path=path, field="slices")
    return index


def _mask(f, kspace: np.ndarray, path: Path) -> np.ndarray | None:
    width = kspace.shape[-1]
    if "mask" in f:
        mask = np.asarray(f["mask"][()])
        if mask.shape != (width,):
            raise InputError(f"expected ({width},) to match k-space width, got {mask.shape}",
                             path=path, field="mask")
        if not np.isin(mask, (0, 1)).all():
            raise InputError("expected a 0/1 mask", path=path, field="mask")
        mask = mask.astype(bool)
        return None if mask.all() else mask
    acquired = np.abs(kspace).sum(axis=(0, 1, 2)) > 0
    return None if acquired.all() else acquired


def _header(xml, path: Path | None) -> MRIHeader:
    text = xml.item() if isinstance(xml, np.ndarray) else xml
    try:
        root = ET.fromstring(text)
        enc = root.find("{*}encoding")

        def triple(space, tag, kind):
            node = enc.find(f"{{*}}{space}/{{*}}{tag}")
            return tuple(kind(float(node.find(f"{{*}}{axis}").text)) for axis in "xyz")

        limits = _integers(enc, "encodingLimits/kspace_encoding_step_1", ("minimum", "maximum", "center"))
        frequency = _integers(root, "experimentalConditions", ("H1resonanceFrequency_Hz",))
        return MRIHeader(triple("encodedSpace", "matrixSize", int), triple("encodedSpace", "fieldOfView_mm", float),
                         triple("reconSpace", "matrixSize", int), triple("reconSpace", "fieldOfView_mm", float),
                         phase_encode_limits=limits,
                         h1_resonance_frequency_hz=None if frequency is None else frequency[0])
    except (ET.ParseError, AttributeError, TypeError, ValueError) as err:
        raise InputError(f"unreadable ISMRMRD XML header ({err})", path=path, field="ismrmrd_header") from err


def _integers(node, where: str, tags) -> tuple[int, ...] | None:
    """Optional integers under ``where``; None when any is missing or unreadable (older
    headers, reddiff's own before it wrote them, have none: they stay readable)."""
    parent = node.find("/".join(f"{{*}}{part}" for part in where.split("/")))
    try:
        return tuple(int(float(parent.find(f"{{*}}{tag}").text)) for tag in tags)
    except (AttributeError, TypeError, ValueError, OverflowError):
        return None


def _plain(value):
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    return value.tolist() if isinstance(value, np.ndarray) else value


def write_fastmri(data: MRIData, path) -> Path:
    """Write :class:`MRIData` in the fastMRI layout, atomically.

    Multi-coil data keeps its coil axis; single-coil is written ``(slices, H, W)``
    with its target as ``reconstruction_esc``, multi-coil targets as
    ``reconstruction_rss``. A mask is written only for undersampled data.

    Examples
    --------
    >>> import tempfile, os
    >>> k = np.ones((1, 2, 8, 6), np.complex64)
    >>> out = write_fastmri(MRIData(k, None, multicoil=True), os.path.join(tempfile.mkdtemp(), "f.h5"))
    >>> read_fastmri(out).kspace.shape
    (1, 2, 8, 6)
    """
    import h5py

    kspace = np.asarray(data.kspace, dtype=np.complex64)
    if kspace.ndim != 4:
        raise InputError(f"expected kspace (slices, coils, H, W), got {kspace.shape}", field="kspace")
    if not np.isfinite(kspace.view(np.float32)).all():
        raise InputError("k-space has NaN or infinite values", field="kspace")
    if data.mask is not None and np.shape(data.mask) != (kspace.shape[-1],):
        raise InputError(f"expected ({kspace.shape[-1]},), got {np.shape(data.mask)}", field="mask")

    def write(tmp):
        with h5py.File(tmp, "w") as f:
            f.create_dataset("kspace", data=kspace if data.multicoil else kspace[:, 0])
            if data.mask is not None:
                f.create_dataset("mask", data=np.asarray(data.mask, dtype=bool))
            if data.target is not None:
                name = "reconstruction_rss" if data.multicoil else "reconstruction_esc"
                f.create_dataset(name, data=np.asarray(data.target, dtype=np.float32))
            if data.header is not None:
                f.create_dataset("ismrmrd_header", data=data.header.to_xml())
            for key, value in data.attrs.items():
                f.attrs[key] = value
    return write_file(path, write)
