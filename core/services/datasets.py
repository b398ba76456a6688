"""Datasets available to a user: the built-ins now, uploads (issue 4) beside them."""

from core.errors import NotFound
from ml.datasets import BUILTINS, load_builtin


class DatasetService:
    def all(self) -> list[dict]:
        return [load_builtin(dataset_id).schema for dataset_id in BUILTINS]

    def schema(self, dataset_id: str) -> dict:
        if dataset_id not in BUILTINS:
            raise NotFound(f"dataset '{dataset_id}' not found; built-ins: "
                           f"{', '.join(BUILTINS)}",
                           [{"field": "dataset", "value": dataset_id}])
        return load_builtin(dataset_id).schema
