"""Datasets a user can see: the built-ins, and uploads stored once per content hash."""

import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from core.artifacts import open_store
from core.errors import (
    CapasError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from core.models import Dataset as DatasetRow
from core.repositories.datasets import DatasetRepository
from core.services.auth import Principal
from core.settings import Settings
from ml.datasets import BUILTINS, Dataset, load_builtin, load_canonical, save_canonical
from ml.errors import DataError
from ml.uploads import (
    NotThatFormat,
    UploadError,
    UploadLimits,
    UploadTooLarge,
    parse_options,
    read_upload,
    resolve_format,
)

MB = 1024 * 1024
# Uploaded ids never look like built-in ones ("builtin:..."), whatever a client sends.
UPLOAD_ID_PREFIX = "ds_"


def _http_error(error: UploadError) -> CapasError:
    kind = (PayloadTooLarge if isinstance(error, UploadTooLarge)
            else UnsupportedMediaType if isinstance(error, NotThatFormat) else Invalid)
    return kind(str(error), error.details)


def _builtin(dataset: Dataset) -> dict[str, Any]:
    return {**dataset.schema, "name": dataset.id.removeprefix("builtin:"), "source": "builtin",
            "format": None, "owner_id": None, "created_at": None, "public": True}


def _uploaded(row: DatasetRow) -> dict[str, Any]:
    schema = {key: value for key, value in row.schema.items() if key != "preview"}
    return {**schema, "name": row.name, "source": "upload", "format": row.format,
            "owner_id": row.owner_id, "created_at": row.created_at, "public": row.public}


class DatasetService:
    def __init__(self, session: Session, settings: Settings):
        self.session = session
        self.settings = settings
        self.datasets = DatasetRepository(session)
        self.store = open_store(settings)

    def visible(self, principal: Principal) -> list[dict[str, Any]]:
        """The built-ins, then the caller's uploads and the public ones (everyone's for an
        admin), oldest first."""
        return ([_builtin(load_builtin(dataset_id)) for dataset_id in BUILTINS]
                + [_uploaded(row) for row in self.datasets.visible_to(principal.owner_filter())])

    def describe(self, principal: Principal, dataset_id: str) -> dict[str, Any]:
        """The schema and a preview of the first samples."""
        if dataset_id in BUILTINS:
            dataset = load_builtin(dataset_id)
            return {**_builtin(dataset), "preview": dataset.preview()}
        row = self._readable(principal, dataset_id)
        return {**_uploaded(row), "preview": row.schema["preview"]}

    def schema(self, principal: Principal, dataset_id: str) -> dict[str, Any]:
        """What a job is checked against: a dataset this caller may train on."""
        if dataset_id in BUILTINS:
            return load_builtin(dataset_id).schema
        return _uploaded(self._readable(principal, dataset_id))

    def load(self, dataset_id: str, sha256: str | None) -> Dataset:
        """The data a job trains on, refused unless it is the content the job was submitted
        with (`sha256`; the job was authorised then too)."""
        if dataset_id in BUILTINS:
            dataset = load_builtin(dataset_id)
        else:
            row = self.datasets.get(dataset_id)
            if row is None:
                raise DataError(f"dataset '{dataset_id}' no longer exists")
            path = self.store.dataset_path(row.sha256)
            if path is None:
                raise DataError(f"the stored file of dataset '{dataset_id}' is missing")
            dataset = load_canonical(path, row.schema)
        if sha256 is not None and dataset.schema["sha256"] != sha256:
            raise DataError(f"dataset '{dataset_id}' changed since the job was submitted "
                            f"(sha256 {sha256[:12]}… is now {dataset.schema['sha256'][:12]}…)")
        return dataset

    def upload(self, principal: Principal, path: Path, filename: str | None,
               content_type: str | None, fields: dict[str, str]) -> tuple[dict[str, Any], bool]:
        """Read a received file into a dataset; returns (dataset, created).

        The same content, name and description from the same owner return the first upload.
        Nothing is stored unless the whole file reads.
        """
        try:
            options = parse_options(fields)
            file_format = resolve_format(options, filename, content_type)
            dataset = read_upload(path, file_format, options, self._limits(),
                                  f"{UPLOAD_ID_PREFIX}{uuid.uuid4().hex}")
        except UploadError as error:
            raise _http_error(error) from None
        sha256 = dataset.schema["sha256"]
        name = options.name or filename or dataset.id
        stored = {**dataset.schema, "preview": dataset.preview()}
        for row in self.datasets.owned_with_content(principal.id, sha256):
            if row.name == name and row.schema == {**stored, "id": row.id}:
                return _uploaded(row), False
        self.store.store_dataset(sha256, lambda path: save_canonical(dataset, path))
        row = self.datasets.add(DatasetRow(id=dataset.id, name=name, owner_id=principal.id,
                                           format=file_format, sha256=sha256, schema=stored))
        return _uploaded(row), True

    def delete(self, principal: Principal, dataset_id: str) -> None:
        if dataset_id in BUILTINS:
            raise Forbidden(f"dataset '{dataset_id}' is built in and cannot be deleted",
                            [{"field": "dataset", "value": dataset_id}])
        row = self._owned(principal, dataset_id)
        jobs = self.datasets.active_jobs_using(dataset_id)
        if jobs:
            raise Conflict(f"dataset '{dataset_id}' is used by {len(jobs)} queued or running "
                           f"job(s): {', '.join(jobs)}",
                           [{"field": "dataset", "value": dataset_id, "jobs": jobs}])
        sha256 = row.sha256
        self.datasets.delete(row)
        self.session.commit()
        # The file is shared by every upload of the same content: it goes with the last one.
        if self.datasets.count_with_content(sha256) == 0:
            self.store.delete_dataset(sha256)

    def set_public(self, principal: Principal, dataset_id: str, public: bool) -> dict[str, Any]:
        """Open the dataset to every member (to list, inspect and train on), or close it."""
        if dataset_id in BUILTINS:
            raise Forbidden(f"dataset '{dataset_id}' is built in and always public",
                            [{"field": "dataset", "value": dataset_id}])
        row = self._owned(principal, dataset_id)
        row.public = public
        self.session.commit()
        return self.describe(principal, dataset_id)

    def _row(self, dataset_id: str) -> DatasetRow:
        row = self.datasets.get(dataset_id)
        if row is None:
            raise NotFound(f"dataset '{dataset_id}' not found; built-ins: {', '.join(BUILTINS)}",
                           [{"field": "dataset", "value": dataset_id}])
        return row

    def _readable(self, principal: Principal, dataset_id: str) -> DatasetRow:
        row = self._row(dataset_id)
        principal.check_reader(row.owner_id, row.public)
        return row

    def _owned(self, principal: Principal, dataset_id: str) -> DatasetRow:
        row = self._row(dataset_id)
        principal.check_owner(row.owner_id)
        return row

    def _limits(self) -> UploadLimits:
        return UploadLimits(max_archive_bytes=self.settings.max_archive_mb * MB,
                            max_archive_members=self.settings.max_archive_members,
                            max_image_pixels=self.settings.max_image_pixels,
                            max_dataset_bytes=self.settings.max_dataset_mb * MB)
