"""Uploaded files (CSV, NPZ, ZIP of image folders) read into a `Dataset`; bad data is refused
with its place named: row and column, array index, or archive member. No HTTP or SQL here."""

import csv
import io
import math
import re
import stat
import zipfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ml.datasets import Dataset
from ml.errors import DataError

if TYPE_CHECKING:
    from PIL.Image import Image

ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
# A numeric target with at most this many distinct integer values is read as class labels.
MAX_INFERRED_CLASSES = 20
MAX_CLASSES = 1000
# Cells converted at once: bounds the memory of parsing, whatever the file's size.
CHUNK_CELLS = 65_536
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F"})
FORMAT_BY_SUFFIX = {".csv": "csv", ".npz": "npz", ".zip": "zip"}
FORMAT_BY_CONTENT_TYPE = {"text/csv": "csv", "application/zip": "zip",
                          "application/x-zip-compressed": "zip"}
# No image file of the allowed pixels is larger than this many bytes a pixel (16-bit RGBA, the
# widest pixels a common format stores uncompressed) plus room for the metadata beside them
# (EXIF, ICC profiles): the cap on what an archive member may expand to.
MAX_BYTES_PER_PIXEL = 8
IMAGE_METADATA_BYTES = 1 << 20


class UploadError(DataError):
    """The file cannot become a dataset; `details` name the place (row, column, member)."""

    def __init__(self, message: str, field: str = "file", value: Any = None, **place: Any):
        super().__init__(message)
        self.details = [{"field": field, "value": value, **place}]


class NotThatFormat(UploadError):
    """The file is not the format it claims, or not one of the formats read at all."""


class UploadTooLarge(UploadError):
    """An archive or the arrays it makes exceed a configured limit."""


@dataclass(frozen=True)
class UploadLimits:
    max_archive_bytes: int
    max_archive_members: int
    max_image_pixels: int
    max_dataset_bytes: int

    @property
    def max_member_bytes(self) -> int:
        """What one image in an archive may expand to."""
        return self.max_image_pixels * MAX_BYTES_PER_PIXEL + IMAGE_METADATA_BYTES


ImageSize = Annotated[str, Field(pattern=r"^[1-9][0-9]{0,4}x[1-9][0-9]{0,4}$")]


class UploadOptions(BaseModel):
    """The form fields sent beside the file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["csv", "npz", "zip"] | None = None
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    description: Annotated[str, Field(max_length=1000)] = ""
    target: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    task: Literal["classification", "regression"] | None = None
    image_size: ImageSize | None = None  # "HEIGHTxWIDTH"
    channels: Literal["1", "3"] | None = None

    @property
    def image_shape(self) -> tuple[int, int] | None:
        if self.image_size is None:
            return None
        height, width = self.image_size.split("x")
        return int(height), int(width)


def parse_options(fields: dict[str, str]) -> UploadOptions:
    try:
        return UploadOptions.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else "form"
        if error["type"] == "extra_forbidden":
            message = (f"unknown field '{field}'; the fields are: file, "
                       f"{', '.join(UploadOptions.model_fields)}")
        else:
            message = f"{field}: {error['msg'][0].lower()}{error['msg'][1:]}"
        raise UploadError(message, field=field, value=error.get("input")) from None


def resolve_format(options: UploadOptions, filename: str | None,
                   content_type: str | None) -> str:
    """The format asked for: the `format` field, else the file's suffix, else its type."""
    if options.format:
        return options.format
    suffix = PurePosixPath(filename or "").suffix.lower()  # compared only, never a path
    found = FORMAT_BY_SUFFIX.get(suffix) or FORMAT_BY_CONTENT_TYPE.get(content_type or "")
    if found is None:
        raise NotThatFormat(f"cannot tell the format of '{filename}': send a .csv, .npz or .zip "
                            "file, or name it in the 'format' field", field="format",
                            value=filename)
    return found


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
        return _read_csv(path, options, limits, dataset_id)
    if head.startswith(EMPTY_ZIP_MAGIC):
        raise UploadError("the archive is empty")
    if not head.startswith(ZIP_MAGIC):
        raise NotThatFormat(f"the file is not a ZIP archive, so not {file_format.upper()}",
                            value=file_format)
    if file_format == "npz":
        return _read_npz(path, options, limits, dataset_id)
    return _read_image_zip(path, options, limits, dataset_id)


# --- CSV -------------------------------------------------------------------------------------


def _line_bound(path: Path) -> int:
    """At least the number of lines, counted without holding the file."""
    newlines = returns = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            newlines += block.count(b"\n")
            returns += block.count(b"\r")
    return max(newlines, returns) + 1


def _csv_rows(handle) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank row; the header is line 1."""
    reader = csv.reader(handle)
    try:
        for row in reader:
            if row:
                yield reader.line_num, row
    except UnicodeDecodeError:
        raise NotThatFormat("the file is not UTF-8 text, so not CSV", value="csv") from None
    except csv.Error as error:
        raise UploadError(f"row {reader.line_num}: {error}", row=reader.line_num) from None


def _check_header(header: list[str], target: str | None) -> list[str]:
    columns = [name.strip() for name in header]
    for position, name in enumerate(columns, start=1):
        if not name:
            raise UploadError(f"row 1: column {position} has no name", row=1, column=position)
    for name, count in Counter(columns).items():
        if count > 1:
            raise UploadError(f"row 1: column '{name}' appears {count} times", row=1,
                              column=name, value=name)
    if target is None:
        raise UploadError("a CSV upload needs the 'target' field: the column to predict; "
                          f"the columns are: {', '.join(columns)}", field="target",
                          columns=columns)
    if target not in columns:
        raise UploadError(f"target column '{target}' not found; the columns are: "
                          f"{', '.join(columns)}", field="target", value=target, columns=columns)
    if len(columns) < 2:
        raise UploadError(f"the file has no feature columns besides the target '{target}'",
                          field="target", value=target, columns=columns)
    return columns


def _first_bad_cell(cells: np.ndarray, lines: list[int], names: list[str]) -> UploadError:
    """The error for the first cell that is not a number (the slow path of a failed chunk)."""
    for row, line in zip(cells, lines, strict=True):
        for cell, name in zip(row.tolist(), names, strict=True):
            try:
                np.float32(cell)
            except ValueError:
                if not cell.strip():
                    return UploadError(f"row {line}, column '{name}': the value is empty",
                                       row=line, column=name, value=cell)
                return UploadError(f"column '{name}' is not numeric: row {line} has {cell!r}; "
                                   "features must be numbers", row=line, column=name,
                                   value=cell)
    # Each cell converts alone: name the rows of the chunk that would not convert together.
    return UploadError(f"rows {lines[0]} to {lines[-1]}: a feature value is not a number",
                       row=lines[0])


def _non_finite_error(values: np.ndarray, raw: np.ndarray, lines: list[int],
                      names: list[str]) -> UploadError | None:
    bad = np.argwhere(~np.isfinite(values))
    if not len(bad):
        return None
    row, column = bad[0]
    value = str(raw[row, column]).strip()
    return UploadError(f"row {lines[row]}, column '{names[column]}': {value!r} is not a finite "
                       "number", row=lines[row], column=names[column], value=value)


class _TargetColumn:
    """A CSV target gathered chunk by chunk: class codes while there are few enough labels,
    float32 numbers while every value parses."""

    def __init__(self, name: str):
        self.name = name
        self.labels: dict[str, int] = {}
        self.codes: list[np.ndarray] = []
        self.values: list[np.ndarray] = []
        self.first_text: tuple[int, str] | None = None  # (line, value) of the first non-number
        self.first_non_finite: tuple[int, str] | None = None  # the same for NaN, inf, overflow
        self.too_many = False

    def add(self, cells: np.ndarray, lines: list[int]) -> None:
        cells = np.array([cell.strip() for cell in cells.tolist()], dtype=object)
        empty = np.flatnonzero(cells == "")
        if len(empty):
            line = lines[empty[0]]
            raise UploadError(f"row {line}, column '{self.name}': the target is empty",
                              row=line, column=self.name, value="")
        if self.first_text is None:
            self._add_numbers(cells, lines)
        if not self.too_many:
            uniques, inverse = np.unique(cells, return_inverse=True)
            codes = [self.labels.setdefault(label, len(self.labels)) for label in uniques.tolist()]
            self.too_many = len(self.labels) > MAX_CLASSES
            self.codes = [] if self.too_many else [*self.codes,
                                                   np.asarray(codes, np.int32)[inverse]]

    def _add_numbers(self, cells: np.ndarray, lines: list[int]) -> None:
        try:
            with np.errstate(over="ignore"):
                values = cells.astype(np.float32)
        except ValueError:
            index = next(i for i, cell in enumerate(cells.tolist()) if not _is_number(cell))
            self.first_text, self.values = (lines[index], cells[index]), []
            return
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad) and self.first_non_finite is None:
            self.first_non_finite = (lines[bad[0]], cells[bad[0]])
        self.values.append(values)

    def finish(self, task: str | None) -> tuple[str, np.ndarray, list[str] | None]:
        numeric = self.first_text is None
        if task is None:
            few_integers = (numeric and not self.too_many and self.first_non_finite is None
                            and len(self.labels) <= MAX_INFERRED_CLASSES
                            and all(np.all(part == np.round(part)) for part in self.values))
            task = "classification" if not numeric or few_integers else "regression"
        if task == "regression":
            return task, self._regression_target(), None
        if self.too_many:
            raise UploadError(f"target column '{self.name}' has more than {MAX_CLASSES} distinct "
                              "values: too many classes (send task=regression for a numeric "
                              "target)", field="target", value=self.name)
        names = sorted(self.labels, key=float if numeric else str)
        if len(names) < 2:
            raise UploadError(f"target column '{self.name}' has one class only ({names[0]!r}); "
                              "classification needs at least two", field="target",
                              value=self.name, classes=names)
        order = np.empty(len(names), np.int64)
        for index, label in enumerate(names):
            order[self.labels[label]] = index
        return task, order[np.concatenate(self.codes)], names

    def _regression_target(self) -> np.ndarray:
        if self.first_text is not None:
            line, value = self.first_text
            raise UploadError(f"row {line}, column '{self.name}': {value!r} is not a number, and "
                              "a regression target must be", row=line, column=self.name,
                              value=value)
        if self.first_non_finite is not None:
            line, value = self.first_non_finite
            raise UploadError(f"row {line}, column '{self.name}': {value!r} is not a finite "
                              "number", row=line, column=self.name, value=value)
        return np.concatenate(self.values).reshape(-1, 1)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_csv(path: Path, options: UploadOptions, limits: UploadLimits,
              dataset_id: str) -> Dataset:
    rows_bound = _line_bound(path)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = _csv_rows(handle)
        first = next(rows, None)
        if first is None:
            raise UploadError("the file is empty")
        columns = _check_header(first[1], options.target)
        width = len(columns)
        target_index = columns.index(options.target)
        feature_index = [i for i in range(width) if i != target_index]
        feature_names = [columns[i] for i in feature_index]
        if rows_bound * len(feature_index) * 4 > limits.max_dataset_bytes:
            raise UploadTooLarge(f"the file's {rows_bound} lines of {len(feature_index)} features "
                                 f"exceed the dataset limit of {limits.max_dataset_bytes} bytes")
        # Untouched pages of np.empty cost no memory: the bound may be loose.
        x = np.empty((rows_bound, len(feature_index)), np.float32)
        target = _TargetColumn(options.target)
        chunk_rows = max(1, CHUNK_CELLS // width)
        count = 0
        chunk: list[list[str]] = []
        lines: list[int] = []

        def convert() -> None:
            nonlocal count
            # Object cells refer to the parsed strings: no copy sized by the longest cell.
            cells = np.array(chunk, dtype=object)
            features = cells[:, feature_index]
            try:
                with np.errstate(over="ignore"):
                    values = features.astype(np.float32)
            except ValueError:
                raise _first_bad_cell(features, lines, feature_names) from None
            error = _non_finite_error(values, features, lines, feature_names)
            if error:
                raise error
            target.add(cells[:, target_index], lines)
            x[count:count + len(chunk)] = values
            count += len(chunk)
            chunk.clear()
            lines.clear()

        for line, row in rows:
            if len(row) != width:
                raise UploadError(f"row {line} has {len(row)} fields, the header has {width}",
                                  row=line, value=len(row))
            chunk.append(row)
            lines.append(line)
            if len(chunk) == chunk_rows:
                convert()
        if chunk:
            convert()
    if count == 0:
        raise UploadError("the file has a header but no rows")
    task, y, class_names = target.finish(options.task)
    return Dataset(id=dataset_id, x=x[:count], y=y, task=task, kind="tabular",
                   class_names=class_names, feature_names=feature_names,
                   description=options.description, target_name=options.target)


# --- archives ---------------------------------------------------------------------------------


def _check_archive_size(infos: list[zipfile.ZipInfo], limits: UploadLimits) -> None:
    # The sizes are the archive's own claims; zipfile never inflates a member past its
    # declared size (and checks its CRC), so checking the claims bounds the real work.
    if len(infos) > limits.max_archive_members:
        raise UploadTooLarge(f"the archive has {len(infos)} members, more than the limit of "
                             f"{limits.max_archive_members}", value=len(infos))
    total = sum(info.file_size for info in infos)
    if total > limits.max_archive_bytes:
        raise UploadTooLarge(f"the archive expands to {total} bytes, more than the limit of "
                             f"{limits.max_archive_bytes}", value=total)


def _open_zip(path: Path, file_format: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise NotThatFormat(f"the file is not a readable ZIP archive, so not "
                            f"{file_format.upper()} ({error})", value=file_format) from None


# --- NPZ --------------------------------------------------------------------------------------


def _npz_array(arrays, name: str) -> np.ndarray:
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


def _read_npz(path: Path, options: UploadOptions, limits: UploadLimits,
              dataset_id: str) -> Dataset:
    with _open_zip(path, "npz") as archive:
        _check_archive_size(archive.infolist(), limits)
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


# --- ZIP of image folders ----------------------------------------------------------------------


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

    def __init__(self, stream: BinaryIO, cap: int, name: str):
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

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self.stream.read(min(len(buffer), self.cap + 1 - self.position))
        self.position += len(data)
        if self.position > self.cap:
            raise _member_too_large(self.name, self.cap)
        buffer[:len(data)] = data
        return len(data)


def _not_an_image(name: str, error: Exception) -> UploadError:
    from PIL import UnidentifiedImageError

    reason = "" if isinstance(error, UnidentifiedImageError) else f" ({error})"
    return UploadError(f"archive member '{name}' does not decode as an image{reason}",
                       member=name, value=name)


@contextmanager
def decoding_image(stream: BinaryIO, name: str, cap: int) -> Iterator["Image"]:
    """The image in `stream` (its header read; pixels decode on use), read at most `cap` + 1
    bytes; errors name the member."""
    from PIL import Image

    with CappedStream(stream, cap, name) as capped:
        try:
            image = Image.open(capped)
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


def _read_image_zip(path: Path, options: UploadOptions, limits: UploadLimits,
                    dataset_id: str) -> Dataset:
    from PIL import Image

    with _open_zip(path, "zip") as archive:
        _check_archive_size(archive.infolist(), limits)
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
