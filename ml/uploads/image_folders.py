"""ZIP archives of image folders, one folder per class: members checked by name and size, each
image decoded as it streams with a cap on what it may expand to."""

import io
import re
import stat
import zipfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

from ml.datasets import Dataset
from ml.uploads.archives import check_archive_size, open_zip
from ml.uploads.common import GREY_MODES, UploadError, UploadLimits, UploadOptions, UploadTooLarge

if TYPE_CHECKING:
    from PIL.Image import Image
    from typing_extensions import Buffer

def _check_member(info: zipfile.ZipInfo) -> list[str] | None:
    """The member's path parts, None for what is skipped; refuses escaping or linked members."""
    name = info.filename
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
        raise UploadError(f"archive member '{name}' is outside its folder", member=name,
                          value=name)
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UploadError(f"archive member '{name}' is a link; only plain files are read",
                          member=name, value=name)
    parts = [part for part in parts if part not in ("", ".")]
    # Folders, macOS metadata and hidden files are not images of any class.
    if info.is_dir() or not parts or parts[0] == "__MACOSX" or parts[-1].startswith("."):
        return None
    if info.flag_bits & 0x1:
        raise UploadError(f"archive member '{name}' is encrypted", member=name, value=name)
    return parts


def _image_members(infos: list[zipfile.ZipInfo]) -> list[tuple[str, zipfile.ZipInfo]]:
    """(class, member) for each image, sorted; one optional folder may wrap the class folders."""
    files = [(parts, info) for info in infos if (parts := _check_member(info)) is not None]
    if not files:
        raise UploadError("the archive holds no images")
    if len({parts[0] for parts, _ in files}) == 1 and all(len(p) >= 3 for p, _ in files):
        files = [(parts[1:], info) for parts, info in files]
    for parts, info in files:
        if len(parts) != 2:
            raise UploadError(f"archive member '{info.filename}' is not directly inside a class "
                              "folder (expected <class>/<image>)", member=info.filename,
                              value=info.filename)
    return sorted(((parts[0], info) for parts, info in files),
                  key=lambda member: (member[0], member[1].filename))


def _member_too_large(name: str, cap: int) -> UploadTooLarge:
    return UploadTooLarge(f"archive member '{name}' expands to more than {cap} bytes, more than "
                          "an image of the allowed pixels", member=name, value=name, limit=cap)


class CappedStream(io.RawIOBase):
    """An archive member's bytes, never read past `cap`: the byte after it refuses the member
    by name. Images decode from it as they stream, so no member is ever held whole."""

    def __init__(self, stream: IO[bytes], cap: int, name: str):
        super().__init__()
        self.stream, self.cap, self.name = stream, cap, name
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self.stream.seekable()

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.position = self.stream.seek(offset, whence)
        if self.position > self.cap:
            raise _member_too_large(self.name, self.cap)
        return self.position

    def readinto(self, buffer: "Buffer") -> int:
        view = memoryview(buffer).cast("B")
        data = self.stream.read(min(len(view), self.cap + 1 - self.position))
        self.position += len(data)
        if self.position > self.cap:
            raise _member_too_large(self.name, self.cap)
        view[:len(data)] = data
        return len(data)


def _not_an_image(name: str, error: Exception) -> UploadError:
    from PIL import UnidentifiedImageError

    reason = "" if isinstance(error, UnidentifiedImageError) else f" ({error})"
    return UploadError(f"archive member '{name}' does not decode as an image{reason}",
                       member=name, value=name)


@contextmanager
def decoding_image(stream: IO[bytes], name: str, cap: int) -> Iterator["Image"]:
    """The image in `stream` (its header read; pixels decode on use), read at most `cap` + 1
    bytes; errors name the member."""
    from PIL import Image

    with CappedStream(stream, cap, name) as capped:
        try:
            # Pillow reads, seeks and tells, as it documents; its annotation asks for IO[bytes].
            image = Image.open(capped)  # type: ignore[arg-type]
        except UploadError:
            raise
        except Exception as error:  # Pillow raises many kinds for bytes that are not an image
            raise _not_an_image(name, error) from None
        with image:
            yield image


@contextmanager
def _member_image(archive: zipfile.ZipFile, info: zipfile.ZipInfo,
                  limits: UploadLimits) -> Iterator["Image"]:
    cap = limits.max_member_bytes
    if info.file_size > cap:  # zipfile never inflates a member past the size it declares
        raise _member_too_large(info.filename, cap)
    with archive.open(info) as member, decoding_image(member, info.filename, cap) as image:
        yield image


def _image_shape(archive: zipfile.ZipFile, members: list[tuple[str, zipfile.ZipInfo]],
                 options: UploadOptions, limits: UploadLimits) -> tuple[int, int, int]:
    """(height, width, channels): the client's, or the most common size and grey if all are."""
    sizes: Counter[tuple[int, int]] = Counter()
    colour = False
    for _, info in members:
        with _member_image(archive, info, limits) as image:  # the header only
            width, height = image.size
            mode = image.mode
        if width * height > limits.max_image_pixels:
            raise UploadTooLarge(f"archive member '{info.filename}' has {width}×{height} pixels, "
                                 f"more than the limit of {limits.max_image_pixels}",
                                 member=info.filename, value=info.filename)
        sizes[(height, width)] += 1
        colour = colour or mode not in GREY_MODES
    height, width = options.image_shape or sizes.most_common(1)[0][0]
    channels = int(options.channels) if options.channels else (3 if colour else 1)
    if height * width > limits.max_image_pixels:
        raise UploadTooLarge(f"image_size {height}x{width} exceeds the limit of "
                             f"{limits.max_image_pixels} pixels", field="image_size",
                             value=options.image_size)
    return height, width, channels


def read_image_zip(path: Path, options: UploadOptions, limits: UploadLimits,
                    dataset_id: str) -> Dataset:
    from PIL import Image

    with open_zip(path, "zip") as archive:
        check_archive_size(archive.infolist(), limits)
        members = _image_members(archive.infolist())
        classes = sorted({label for label, _ in members})
        if len(classes) < 2:
            raise UploadError(f"the archive has one class folder only ('{classes[0]}'); "
                              "classification needs at least two", classes=classes)
        height, width, channels = _image_shape(archive, members, options, limits)
        if len(members) * height * width * channels * 4 > limits.max_dataset_bytes:
            raise UploadTooLarge(f"{len(members)} images of {height}×{width}×{channels} exceed "
                                 f"the dataset limit of {limits.max_dataset_bytes} bytes")
        x = np.empty((len(members), height, width, channels), np.float32)
        mode = "L" if channels == 1 else "RGB"
        for index, (_, info) in enumerate(members):
            with _member_image(archive, info, limits) as image:
                try:
                    pixels = image.convert(mode)
                    if pixels.size != (width, height):
                        pixels = pixels.resize((width, height), Image.Resampling.BILINEAR)
                    x[index] = np.asarray(pixels, np.float32).reshape(height, width, channels)
                except UploadError:
                    raise
                except Exception as error:  # a header that reads, then pixels that do not
                    raise _not_an_image(info.filename, error) from None
    index_of = {label: index for index, label in enumerate(classes)}
    y = np.array([index_of[label] for label, _ in members], np.int64)
    return Dataset(id=dataset_id, x=x, y=y, task="classification", kind="image",
                   class_names=classes, description=options.description)
