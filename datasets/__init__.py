"""File formats (fastMRI HDF5, DICOM, FITS, sinograms), simulated measurement files
and the offline sample images.

Readers return small dataclasses holding arrays, metadata and the source path;
every failure is a :class:`reddiff.errors.InputError` naming the file and field.
"""

from .detect import FORMATS, detect_format
from .dicom import DicomVolume, read_dicom, write_dicom, write_dicom_series
from .fastmri import MRIData, MRIHeader, column_mask, read_fastmri, write_fastmri
from .fits import SkyImage, read_fits, read_psf, write_fits, write_fits_cube
from .formats import KINDS, describe, file_kind, read_measurement
from .geometry import dicom_reference, slice_spacing_mm, volume_affine, with_geometry
from .images import ImageData, read_image
from .nifti import write_nifti
from .outputs import check_source_formats, source_for_formats, write_result, write_volume_sources
from .phantoms import body_phantom, ellipse_phantom, pseudo_ct_head, synthetic_mr_contrast, tissue_maps
from .samples import SAMPLES, SampleImage, list_samples, sample_image, sample_path
from .simulate import simulate_fastmri, simulate_sinogram, simulate_sky
from .sinogram import Sinogram, read_sinogram, write_sinogram

__all__ = ["read_image", "ImageData", "detect_format", "FORMATS", "file_kind", "KINDS",
           "describe", "read_measurement",
           "read_dicom", "write_dicom", "write_dicom_series", "DicomVolume", "read_fits", "read_psf", "write_fits",
           "write_fits_cube", "SkyImage", "dicom_reference", "volume_affine", "write_volume_sources",
           "read_fastmri", "write_fastmri", "column_mask", "MRIData", "MRIHeader",
           "read_sinogram", "write_sinogram", "Sinogram", "with_geometry", "check_source_formats", "source_for_formats", "slice_spacing_mm", "write_result",
           "simulate_fastmri", "simulate_sinogram", "simulate_sky",
           "sample_image", "sample_path", "list_samples", "SampleImage", "SAMPLES", "ellipse_phantom", "body_phantom", "write_nifti",
           "synthetic_mr_contrast", "tissue_maps", "pseudo_ct_head"]
