"""The classic datasets in their native files, as one ZIP or tar archive (gzipped or not): IDX
files (MNIST, Fashion-MNIST, KMNIST, EMNIST) and CIFAR-10/100 binary batches. Nothing is
unpickled; the test files' samples stay the test split."""

import gzip
import math
import re
import struct
import tarfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import IO

import numpy as np

from ml.datasets import Dataset
from ml.uploads.archives import open_zip
from ml.uploads.common import (
    ZIP_MAGIC,
    NotThatFormat,
    UploadError,
    UploadLimits,
    UploadOptions,
    UploadTooLarge,
)

# `train-images-idx3-ubyte`, `t10k-labels-idx1-ubyte.gz`, `emnist-letters-test-images-idx3-ubyte`
IDX_NAME = re.compile(r"(?:^|[-_.])(train|t10k|test)-(images|labels)[-.]idx([13])-ubyte(\.gz)?$")
# IDX type codes (the third byte) and the big-endian values they mean.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
CIFAR10_TRAIN = re.compile(r"^data_batch_([1-9])\.bin$")
CIFAR_SIDE = 32
CIFAR_VALUES = CIFAR_SIDE * CIFAR_SIDE * 3  # a 32×32 image, channel by channel (R, G, B)
# CIFAR-100 records carry two labels; `target` picks one.
CIFAR100_TARGETS = ("fine", "coarse")


@dataclass(frozen=True)
class Member:
    name: str  # as the archive names it; only compared, never a path on disk
    open: Callable[[], IO[bytes]]


def classic_kind(names: list[str]) -> str | None:
    """"idx" or "cifar" if the archive's file names are those of such a dataset, else None."""
    basenames = [PurePosixPath(name).name for name in names]
    if any(IDX_NAME.search(name) for name in basenames):
        return "idx"
    if any(CIFAR10_TRAIN.match(name) or name in ("test_batch.bin", "train.bin", "test.bin")
           for name in basenames):
        return "cifar"
    return None


def zip_is_classic(path: Path) -> bool:
    with open_zip(path, "zip") as archive:
        return classic_kind(archive.namelist()) is not None


@contextmanager
def _members(path: Path, limits: UploadLimits) -> Iterator[list[Member]]:
    """The archive's plain files (not folders, macOS metadata or hidden files), counted
    against the limit as they are listed."""
    with path.open("rb") as handle:
        is_zip = handle.read(4) == ZIP_MAGIC
    members: list[Member] = []

    def add(name: str, opener: Callable[[], IO[bytes]]) -> None:
        if len(members) >= limits.max_archive_members:
            raise UploadTooLarge(f"the archive has more than {limits.max_archive_members} "
                                 "members, the limit", value=limits.max_archive_members)
        parts = PurePosixPath(name).parts
        if parts and parts[0] != "__MACOSX" and not parts[-1].startswith("."):
            members.append(Member(name, opener))

    if is_zip:
        with open_zip(path, "zip") as archive:
            for info in archive.infolist():
                if info.flag_bits & 0x1:
                    raise UploadError(f"archive member '{info.filename}' is encrypted",
                                      member=info.filename, value=info.filename)
                if not info.is_dir():
                    add(info.filename, partial(archive.open, info))
            yield members
        return
    try:
        tar = tarfile.open(path)  # plain, gzip, bzip2 or xz, told by its first bytes
    except (tarfile.TarError, OSError) as error:
        raise NotThatFormat(f"the file is neither a ZIP nor a tar archive ({error})",
                            value="tar") from None
    with tar:
        for entry in tar:
            if entry.isdir():
                continue
            if not entry.isfile():
                raise UploadError(f"archive member '{entry.name}' is a link or a device; only "
                                  "plain files are read", member=entry.name, value=entry.name)
            add(entry.name, partial(_tar_file, tar, entry))
        yield members


def _tar_file(tar: tarfile.TarFile, info: tarfile.TarInfo) -> IO[bytes]:
    extracted = tar.extractfile(info)
    assert extracted is not None  # a regular file, checked as it was listed
    return extracted


class _Reader:
    """Reads members whole, gunzipping `.gz` ones, within what the archive may expand to."""

    def __init__(self, limits: UploadLimits):
        self.left = limits.max_archive_bytes
        self.limit = limits.max_archive_bytes

    def read(self, member: Member) -> bytes:
        with member.open() as raw:
            stream: IO[bytes] | gzip.GzipFile = (
                gzip.GzipFile(fileobj=raw) if member.name.endswith(".gz") else raw)
            try:
                data = stream.read(self.left + 1)
            except (OSError, EOFError, zlib.error) as error:
                raise UploadError(f"archive member '{member.name}' does not read as gzip "
                                  f"({error})", member=member.name, value=member.name) from None
        if len(data) > self.left:
            raise UploadTooLarge(f"the archive expands to more than {self.limit} bytes, the "
                                 f"limit (at member '{member.name}')", value=member.name)
        self.left -= len(data)
        return data


def _idx_array(name: str, data: bytes) -> np.ndarray:
    """An IDX file's array: two zero bytes, a type code, the number of axes, each axis's size
    as a big-endian uint32, then the values."""
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in IDX_TYPES:
        raise UploadError(f"archive member '{name}' is not an IDX file (it does not start "
                          "with two zero bytes and a type code)", member=name, value=name)
    axes = data[3]
    start = 4 + 4 * axes
    if len(data) < start:
        raise UploadError(f"archive member '{name}' ends inside its IDX header", member=name,
                          value=name)
    shape = struct.unpack(f">{axes}I", data[4:start])
    dtype = np.dtype(IDX_TYPES[data[2]])
    expected = math.prod(shape) * dtype.itemsize
    if len(data) - start != expected:
        raise UploadError(f"archive member '{name}': its header says {'×'.join(map(str, shape))}"
                          f" values ({expected} bytes), the file holds {len(data) - start} bytes",
                          member=name, value=name)
    return np.frombuffer(data, dtype, offset=start).reshape(shape)


def _check_size(images: int, values_each: int, limits: UploadLimits) -> None:
    size = images * values_each * 4  # float32
    if size > limits.max_dataset_bytes:
        raise UploadTooLarge(f"the images make {size} bytes of float32, more than the limit of "
                             f"{limits.max_dataset_bytes}", value=size)


def _classes(labels: np.ndarray, names: list[str] | None, where: str
             ) -> tuple[np.ndarray, list[str]]:
    """Class indices and names: the names file's, else each label value that occurs."""
    if names is not None:
        if labels.size and int(labels.max()) >= len(names):
            raise UploadError(f"{where}: label {int(labels.max())} has no name; the names file "
                              f"lists {len(names)}", value=int(labels.max()))
        return labels.astype(np.int64), names
    values = np.unique(labels)
    if len(values) < 2:
        raise UploadError(f"{where}: the labels hold one class only ({values.tolist()}); "
                          "classification needs at least two", value=values.tolist())
    return np.searchsorted(values, labels).astype(np.int64), [str(v) for v in values.tolist()]


def _one(members: list[Member], what: str) -> Member | None:
    if len(members) > 1:
        raise UploadError(f"the archive holds {len(members)} files of {what}: "
                          f"{', '.join(repr(m.name) for m in members)}; upload one dataset at a "
                          "time", value=[m.name for m in members])
    return members[0] if members else None


def _read_idx(members: list[Member], reader: _Reader, limits: UploadLimits,
              dataset_id: str, description: str) -> Dataset:
    found: dict[tuple[str, str], list[Member]] = {}
    for member in members:
        match = IDX_NAME.search(PurePosixPath(member.name).name)
        if match:
            part = "train" if match[1] == "train" else "test"
            found.setdefault((part, match[2]), []).append(member)
    files = {key: _one(found.get(key, []), f"{key[0]} {key[1]}")
             for key in (("train", "images"), ("train", "labels"), ("test", "images"),
                         ("test", "labels"))}
    for part in ("train", "test"):
        have = [kind for kind in ("images", "labels") if files[(part, kind)]]
        if part == "train" and len(have) < 2 or len(have) == 1:
            missing = "labels" if have == ["images"] else "images"
            raise UploadError(f"the archive has no {part} {missing} (a file named like "
                              f"{'train' if part == 'train' else 't10k'}-{missing}-"
                              f"idx{3 if missing == 'images' else 1}-ubyte[.gz])",
                              value=f"{part}-{missing}")
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for part in ("train", "test"):
        image_file, label_file = files[(part, "images")], files[(part, "labels")]
        if image_file is None or label_file is None:
            continue
        part_images = _idx_array(image_file.name, reader.read(image_file))
        if part_images.ndim != 3:
            raise UploadError(f"archive member '{image_file.name}' holds {part_images.ndim} "
                              "axes; images are [count, rows, columns]",
                              member=image_file.name, value=list(part_images.shape))
        part_labels = _idx_array(label_file.name, reader.read(label_file))
        if part_labels.ndim != 1 or len(part_labels) != len(part_images):
            raise UploadError(f"archive member '{label_file.name}' holds labels of shape "
                              f"{list(part_labels.shape)}; [{len(part_images)}] expected, one "
                              f"per image of '{image_file.name}'", member=label_file.name,
                              value=list(part_labels.shape))
        if PurePosixPath(image_file.name).name.startswith("emnist"):
            # EMNIST stores each image transposed (column by column): turned upright here.
            part_images = np.ascontiguousarray(part_images.transpose(0, 2, 1))
        _check_size(sum(len(i) for i in images) + len(part_images),
                    math.prod(part_images.shape[1:]), limits)
        images.append(part_images)
        labels.append(part_labels)
    if images[0].shape[1:] != images[-1].shape[1:]:
        raise UploadError(f"the train images are {'×'.join(map(str, images[0].shape[1:]))}, "
                          f"the test images {'×'.join(map(str, images[-1].shape[1:]))}",
                          value=list(images[-1].shape[1:]))
    y, class_names = _classes(np.concatenate(labels), None, "the labels")
    x = np.concatenate(images).astype(np.float32)[..., np.newaxis]  # [n, rows, columns, 1]
    return Dataset(id=dataset_id, x=x, y=y, task="classification", kind="image",
                   class_names=class_names, description=description,
                   test_samples=len(images[1]) if len(images) == 2 else None)


def _cifar_records(member: Member, data: bytes, label_bytes: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Each record: its label bytes, then 1024 red, 1024 green and 1024 blue values."""
    record = label_bytes + CIFAR_VALUES
    if not data or len(data) % record:
        raise UploadError(f"archive member '{member.name}' holds {len(data)} bytes, not whole "
                          f"records of {record} ({label_bytes} label byte"
                          f"{'s' if label_bytes > 1 else ''} and a 32×32×3 image)",
                          member=member.name, value=len(data))
    rows = np.frombuffer(data, np.uint8).reshape(-1, record)
    planes = rows[:, label_bytes:].reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE)
    # Channels last, copied in that order while still bytes (a quarter of the float32 size):
    # the float32 copy and the content's hash then read memory in sequence, five times faster.
    return np.ascontiguousarray(planes.transpose(0, 2, 3, 1)), rows[:, :label_bytes]


def _names_file(members: dict[str, Member], name: str, reader: _Reader) -> list[str] | None:
    member = members.get(name)
    if member is None:
        return None
    return [line.strip() for line in reader.read(member).decode("utf-8", "replace").splitlines()
            if line.strip()]


def _read_cifar(members: list[Member], reader: _Reader, options: UploadOptions,
                limits: UploadLimits, dataset_id: str) -> Dataset:
    by_name = {PurePosixPath(m.name).name: m for m in members}
    cifar100 = "train.bin" in by_name
    if cifar100:
        target = options.target or "fine"
        if target not in CIFAR100_TARGETS:
            raise UploadError(f"target: CIFAR-100 has 'fine' and 'coarse' labels, received "
                              f"'{target}'", field="target", value=target)
        train = [by_name["train.bin"]]
        test = by_name.get("test.bin")
        label_bytes, label_column = 2, CIFAR100_TARGETS[::-1].index(target)  # coarse, fine
        names = _names_file(by_name, f"{target}_label_names.txt", reader)
    else:
        if options.target:
            raise UploadError("target: CIFAR-10 has one label per image; target picks "
                              "CIFAR-100's 'fine' or 'coarse' labels", field="target",
                              value=options.target)
        numbered = sorted((int(m[1]), name) for name in by_name
                          if (m := CIFAR10_TRAIN.match(name)))
        if not numbered:
            raise UploadError("the archive has no training batches (data_batch_1.bin, …)",
                              value="data_batch_1.bin")
        train = [by_name[name] for _, name in numbered]
        test = by_name.get("test_batch.bin")
        label_bytes, label_column = 1, 0
        names = _names_file(by_name, "batches.meta.txt", reader)
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for member in [*train, *([test] if test else [])]:
        batch_images, batch_labels = _cifar_records(member, reader.read(member), label_bytes)
        _check_size(sum(len(i) for i in images) + len(batch_images), CIFAR_VALUES, limits)
        images.append(batch_images)
        labels.append(batch_labels[:, label_column])
    y, class_names = _classes(np.concatenate(labels), names, "the labels")
    return Dataset(id=dataset_id, x=np.concatenate(images).astype(np.float32), y=y,
                   task="classification", kind="image", class_names=class_names,
                   description=options.description,
                   test_samples=len(images[-1]) if test else None)


def read_classic(path: Path, file_format: str, options: UploadOptions, limits: UploadLimits,
                 dataset_id: str) -> Dataset:
    """An archive of IDX files or CIFAR binary batches; `file_format` "idx" or "cifar" asks
    for one, "zip" or "tar" takes what the file names say."""
    for option in ("image_size", "channels"):
        if getattr(options, option) is not None:
            raise UploadError(f"{option}: IDX and CIFAR images keep their own size and "
                              "channels", field=option, value=getattr(options, option))
    with _members(path, limits) as members:
        kind = classic_kind([m.name for m in members])
        if kind is None or (file_format in ("idx", "cifar") and kind != file_format):
            wanted = file_format if file_format in ("idx", "cifar") else "IDX or CIFAR"
            raise NotThatFormat(f"the archive holds no {wanted.upper()} files under their usual "
                                "names (train-images-idx3-ubyte, t10k-labels-idx1-ubyte, "
                                "gzipped or not; data_batch_1.bin … test_batch.bin; train.bin, "
                                "test.bin)", value=file_format)
        reader = _Reader(limits)
        if kind == "idx":
            if options.target:
                raise UploadError("target: IDX files have one label per image", field="target",
                                  value=options.target)
            return _read_idx(members, reader, limits, dataset_id, options.description)
        return _read_cifar(members, reader, options, limits, dataset_id)
