"""Uploaded files (CSV, NPZ, ZIP of image folders, archives of IDX or CIFAR files) read into a
`Dataset`; bad data is refused with its place named: row and column, array index, or archive
member. No HTTP or SQL here.

One module per format (`csv_files`, `npz_files`, `image_folders`, `classic`); what they share
is in `common` and `archives`."""

from pathlib import Path

from ml.datasets import Dataset
from ml.uploads.classic import read_classic, zip_is_classic
from ml.uploads.common import (
    EMPTY_ZIP_MAGIC,
    ZIP_MAGIC,
    NotThatFormat,
    UploadError,
    UploadLimits,
    UploadOptions,
    UploadTooLarge,
    parse_options,
    resolve_format,
)
from ml.uploads.csv_files import read_csv
from ml.uploads.image_folders import read_image_zip
from ml.uploads.npz_files import read_npz

__all__ = ["NotThatFormat", "UploadError", "UploadLimits", "UploadOptions", "UploadTooLarge",
           "parse_options", "read_upload", "resolve_format"]


def read_upload(path: Path, file_format: str, options: UploadOptions, limits: UploadLimits,
                dataset_id: str) -> Dataset:
    """Read a received file as `file_format`; raise `UploadError` naming what is wrong."""
    with path.open("rb") as handle:
        head = handle.read(8192)
    if not head:
        raise UploadError("the file is empty")
    if file_format == "csv":
        if head.startswith(ZIP_MAGIC) or b"\x00" in head:
            raise NotThatFormat("the file is binary, not CSV text", value="csv")
        return read_csv(path, options, limits, dataset_id)
    if head.startswith(EMPTY_ZIP_MAGIC):
        raise UploadError("the archive is empty")
    if file_format in ("tar", "idx", "cifar"):
        return read_classic(path, file_format, options, limits, dataset_id)
    if not head.startswith(ZIP_MAGIC):
        raise NotThatFormat(f"the file is not a ZIP archive, so not {file_format.upper()}",
                            value=file_format)
    if file_format == "npz":
        return read_npz(path, options, limits, dataset_id)
    if zip_is_classic(path):
        return read_classic(path, file_format, options, limits, dataset_id)
    return read_image_zip(path, options, limits, dataset_id)
