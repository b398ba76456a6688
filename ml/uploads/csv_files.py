"""CSV uploads: a header row, numeric features, a target column; parsed in bounded chunks, each bad
cell named by its row and column."""

import csv
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ml.datasets import Dataset
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


def _line_bound(path: Path) -> int:
    """At least the number of lines, counted without holding the file."""
    newlines = returns = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            newlines += block.count(b"\n")
            returns += block.count(b"\r")
    return max(newlines, returns) + 1


def _csv_rows(handle: Iterable[str]) -> Iterator[tuple[int, list[str]]]:
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


def _check_header(header: list[str], target: str | None) -> tuple[list[str], int]:
    """The columns' names and the target's position among them."""
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
    return columns, columns.index(target)


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


def read_csv(path: Path, options: UploadOptions, limits: UploadLimits,
              dataset_id: str) -> Dataset:
    rows_bound = _line_bound(path)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = _csv_rows(handle)
        first = next(rows, None)
        if first is None:
            raise UploadError("the file is empty")
        columns, target_index = _check_header(first[1], options.target)
        width = len(columns)
        feature_index = [i for i in range(width) if i != target_index]
        feature_names = [columns[i] for i in feature_index]
        if rows_bound * len(feature_index) * 4 > limits.max_dataset_bytes:
            raise UploadTooLarge(f"the file's {rows_bound} lines of {len(feature_index)} features "
                                 f"exceed the dataset limit of {limits.max_dataset_bytes} bytes")
        # Untouched pages of np.empty cost no memory: the bound may be loose.
        x = np.empty((rows_bound, len(feature_index)), np.float32)
        target = _TargetColumn(columns[target_index])
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
