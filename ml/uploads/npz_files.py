"""NPZ uploads (`x`, `y` arrays, never pickled): each array checked by what its header claims before
it is allocated, then for non-finite values."""

import math
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ml.datasets import Dataset
from ml.uploads.archives import check_archive_size, open_zip
from ml.uploads.common import (
    CHUNK_CELLS,
    MAX_CLASSES,
    MAX_INFERRED_CLASSES,
    NotThatFormat,
    UploadError,
    UploadLimits,
    UploadOptions,
    UploadTooLarge,
)


def _npz_array(arrays: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    try:
        return arrays[name]
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise UploadError(f"array '{name}' holds Python objects, which are never unpickled; "
                              "send numbers (or strings for y)", array=name) from None
        raise UploadError(f"array '{name}' cannot be read: {error}", array=name) from None
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise UploadError(f"array '{name}' cannot be read: {error}", array=name) from None


def _first_non_finite(array: np.ndarray) -> tuple[int, ...] | None:
    """The index of the first NaN or infinite value, scanned in blocks to bound memory."""
    block = max(1, CHUNK_CELLS // max(1, math.prod(array.shape[1:])))
    for start in range(0, len(array), block):
        part = array[start:start + block]
        bad = np.flatnonzero(~np.isfinite(part))
        if len(bad):
            index = np.unravel_index(bad[0], part.shape)
            return (start + int(index[0]), *(int(i) for i in index[1:]))
    return None


def _non_finite_in(array: np.ndarray, name: str) -> None:
    index = _first_non_finite(array)
    if index is not None:
        value = str(array[index])
        place = ", ".join(map(str, index))
        column = list(index[1:]) if len(index) > 2 else (index[1] if len(index) == 2 else None)
        raise UploadError(f"{name}[{place}]: {value} is not a finite number", array=name,
                          row=index[0], column=column, value=value)


def _label_name(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _npz_target(y: np.ndarray, task: str | None) -> tuple[str, np.ndarray, list[str] | None]:
    if y.dtype.kind not in "biufUS":
        raise UploadError(f"array 'y' has dtype {y.dtype}; targets must be numbers or strings",
                          array="y", value=str(y.dtype))
    labels_only = y.dtype.kind in "bUS"
    if task is None:
        few_integers = (y.dtype.kind in "iu" or (
            y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y))
            and len(np.unique(y)) <= MAX_INFERRED_CLASSES))
        task = "classification" if labels_only or few_integers else "regression"
    if task == "regression":
        if labels_only:
            raise UploadError(f"array 'y' has dtype {y.dtype}; a regression target must be "
                              "numbers", array="y", value=str(y.dtype))
        with np.errstate(over="ignore"):
            target = y.astype(np.float32)
        _non_finite_in(target, "y")
        return task, target.reshape(len(y), -1), None
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise UploadError(f"array 'y' has shape {list(y.shape)}; class labels must be [samples]",
                          array="y", value=list(y.shape))
    if y.dtype.kind == "f":
        _non_finite_in(y, "y")
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) > MAX_CLASSES:
        raise UploadError(f"array 'y' has {len(classes)} distinct values, more than "
                          f"{MAX_CLASSES} classes (send task=regression for a numeric target)",
                          array="y", value=len(classes))
    names = [_label_name(value) for value in classes.tolist()]
    if len(names) < 2:
        raise UploadError(f"array 'y' has one class only ({names[0]!r}); classification needs "
                          "at least two", array="y", classes=names)
    return task, codes.astype(np.int64), names


NPZ_KINDS = {2: "tabular", 3: "sequence", 4: "image"}


def _check_npy_header(archive: zipfile.ZipFile, name: str, limits: UploadLimits) -> None:
    """Refuse array `name` by what its `.npy` header claims, before anything is allocated for
    it: a shape larger than the member holds, or than a dataset may be as float32."""
    try:
        info = archive.getinfo(f"{name}.npy")
    except KeyError:
        return  # missing: said with the arrays found, once the archive is open as NPZ
    with archive.open(info) as handle:
        try:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
            else:
                raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
        except (ValueError, EOFError, zipfile.BadZipFile) as error:
            raise UploadError(f"array '{name}' cannot be read: {error}", array=name) from None
    claimed = math.prod(shape) * dtype.itemsize
    if claimed > info.file_size:
        raise UploadError(f"array '{name}' claims shape {list(shape)} of {dtype} ({claimed} "
                          f"bytes), but its file holds {info.file_size} bytes", array=name,
                          value=list(shape))
    if name == "x" and math.prod(shape) * 4 > limits.max_dataset_bytes:
        raise UploadTooLarge(f"array 'x' of shape {list(shape)} exceeds the dataset limit of "
                             f"{limits.max_dataset_bytes} bytes as float32", array=name,
                             value=list(shape))


def read_npz(path: Path, options: UploadOptions, limits: UploadLimits,
              dataset_id: str) -> Dataset:
    with open_zip(path, "npz") as archive:
        check_archive_size(archive.infolist(), limits)
        for name in ("x", "y"):
            _check_npy_header(archive, name, limits)
    try:
        arrays = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise NotThatFormat(f"the file is not an NPZ archive ({error})", value="npz") from None
    with arrays:
        found = list(arrays.files)
        if "x" not in found or "y" not in found:
            raise UploadError("an NPZ upload needs arrays 'x' and 'y'; it has: "
                              f"{', '.join(found) or 'none'}", arrays=found)
        x, y = _npz_array(arrays, "x"), _npz_array(arrays, "y")
    if x.dtype.kind not in "biuf":
        raise UploadError(f"array 'x' has dtype {x.dtype}; features must be numbers",
                          array="x", value=str(x.dtype))
    if x.ndim not in NPZ_KINDS or 0 in x.shape[1:]:
        raise UploadError(f"array 'x' has shape {list(x.shape)}; expected [samples, features], "
                          "[samples, steps, features] or [samples, height, width, channels]",
                          array="x", value=list(x.shape))
    if len(x) == 0:
        raise UploadError("array 'x' has no samples", array="x", value=list(x.shape))
    if y.ndim == 0 or len(y) != len(x):
        raise UploadError(f"array 'y' has {len(y) if y.ndim else 0} samples, 'x' has {len(x)}",
                          array="y", value=list(y.shape))
    with np.errstate(over="ignore"):
        x = x.astype(np.float32, copy=False)
    _non_finite_in(x, "x")
    task, target, class_names = _npz_target(y, options.task)
    return Dataset(id=dataset_id, x=x, y=target, task=task, kind=NPZ_KINDS[x.ndim],
                   class_names=class_names, description=options.description)
