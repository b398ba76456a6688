"""The model registry: publish versions from jobs, read model cards, serve predictions."""

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from core.artifacts import ArtifactStore
from core.errors import Conflict, Invalid, NotFound
from core.models import Job, ModelVersion, RegisteredModel
from core.repositories.models import ModelRepository
from core.services.auth import Principal
from core.settings import Settings
from ml.artifacts import ONNX_FILE, ArtifactIntegrityError, verify
from ml.serving import InstanceError, Predictor, to_batch


class PredictorCache:
    """LRU of loaded ONNX Runtime sessions, keyed by model version id."""

    def __init__(self, size: int):
        self.size = size
        self.entries: OrderedDict[int, Predictor] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, version: ModelVersion, directory: Path) -> Predictor:
        with self.lock:
            if version.id in self.entries:
                self.entries.move_to_end(version.id)
                return self.entries[version.id]
        # Load outside the lock; only files this service wrote, matching the card's sha256.
        predictor = Predictor.load(verify(directory, version.card, ONNX_FILE))
        with self.lock:
            self.entries[version.id] = predictor
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)
        return predictor


class RegistryService:
    def __init__(self, session: Session, settings: Settings):
        self.settings = settings
        self.models = ModelRepository(session)
        self.store = ArtifactStore(settings)

    def publish(self, job: Job, manifest: dict, directory: Path, max_abs_diff: float) -> int:
        """Register the job's model as the next version of its name; returns its number.

        Runs in the caller's transaction, which also marks the job succeeded: a job is never
        succeeded without its version, nor registered twice.
        """
        model = self.models.get_or_create(manifest["model_name"], job.owner_id)
        version = self.models.add_version(
            model, job_id=job.id, framework=manifest["framework"],
            artifact_dir=self.store.relative(directory),
            card={**manifest, "onnx_max_abs_diff": max_abs_diff},
            onnx_max_abs_diff=max_abs_diff,
            servable=max_abs_diff <= self.settings.parity_tolerance,
        )
        return version.version

    def visible(self, principal: Principal) -> list[RegisteredModel]:
        return self.models.visible_to(principal.owner_filter())

    def get(self, principal: Principal, name: str) -> RegisteredModel:
        model = self.models.get(name)
        if model is None:
            raise NotFound(f"model '{name}' not found", [{"field": "name", "value": name}])
        principal.check_owner(model.owner_id)
        return model

    def resolve(self, principal: Principal, name: str, version: int | None) -> ModelVersion:
        model = self.get(principal, name)
        found = (self.models.get_version(model, version) if version is not None
                 else self.models.latest_version(model))
        if found is None:
            what = f"version {version}" if version is not None else "any version"
            raise NotFound(f"model '{name}' has no {what}",
                           [{"field": "version", "value": version}])
        return found

    def predict(self, principal: Principal, name: str, instances: list[Any],
                version: int | None, cache: PredictorCache) -> dict[str, Any]:
        found = self.resolve(principal, name, version)
        if not found.servable:
            raise Conflict(
                f"model '{name}' version {found.version} is not served: its ONNX export "
                f"differs from the trained model by {found.onnx_max_abs_diff:.3g} (tolerance "
                f"{self.settings.parity_tolerance:g})")
        if len(instances) > self.settings.max_predict_batch:
            raise Invalid(f"instances: {len(instances)} instances exceed the limit of "
                          f"{self.settings.max_predict_batch}",
                          [{"field": "instances", "value": len(instances)}])
        card = found.card
        try:
            batch = to_batch(instances, card["input"]["shape"])
        except InstanceError as error:
            raise Invalid(str(error), [{"field": f"instances[{error.index}]",
                                        "value": instances[error.index]}]) from None
        try:
            predictor = cache.get(found, self.store.resolve(found.artifact_dir))
        except ArtifactIntegrityError as error:
            raise Conflict(f"model '{name}' version {found.version}: {error}") from None
        outputs = predictor.predict(batch)
        return {"model": name, "version": found.version, **_format(card, outputs)}


def _format(card: dict, outputs: np.ndarray) -> dict[str, Any]:
    classes = card.get("class_names")
    if card["task"] != "classification":
        return {"predictions": outputs.tolist()}
    if outputs.shape[-1] == 1:  # one logistic unit: probability of the second class
        outputs = np.concatenate([1.0 - outputs, outputs], axis=-1)
    return {"predictions": [classes[i] for i in outputs.argmax(axis=-1)],
            "probabilities": outputs.round(6).tolist(), "classes": classes}
