"""ZIP archives, as NPZ files and image folders come: opened and sized before any member is read."""

import zipfile
from pathlib import Path

from ml.uploads.common import NotThatFormat, UploadLimits, UploadTooLarge


def check_archive_size(infos: list[zipfile.ZipInfo], limits: UploadLimits) -> None:
    # The sizes are the archive's own claims; zipfile never inflates a member past its
    # declared size (and checks its CRC), so checking the claims bounds the real work.
    if len(infos) > limits.max_archive_members:
        raise UploadTooLarge(f"the archive has {len(infos)} members, more than the limit of "
                             f"{limits.max_archive_members}", value=len(infos))
    total = sum(info.file_size for info in infos)
    if total > limits.max_archive_bytes:
        raise UploadTooLarge(f"the archive expands to {total} bytes, more than the limit of "
                             f"{limits.max_archive_bytes}", value=total)


def open_zip(path: Path, file_format: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise NotThatFormat(f"the file is not a readable ZIP archive, so not "
                            f"{file_format.upper()} ({error})", value=file_format) from None
