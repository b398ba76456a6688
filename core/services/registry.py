"""The model registry: publish versions from jobs, model cards, aliases, artifact downloads."""

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cachetools import LRUCache
from sqlalchemy.orm import Session

from core.artifacts import open_store
from core.errors import Conflict, Invalid, NotFound
from core.models import Job, ModelVersion, RegisteredModel
from core.repositories.models import ModelRepository
from core.services.auth import Principal
from core.settings import Settings
from ml.artifacts import (
    FORMAT_FILES,
    ONNX_FILE,
    ArtifactIntegrityError,
    available_formats,
)
from ml.serving import BatchPolicy, Predictor

DEFAULT_ALIAS = "production"
ALIAS_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")


class PredictorCache:
    """LRU of loaded ONNX Runtime sessions, keyed by model version id."""

    def __init__(self, size: int):
        self.entries: LRUCache[int, Predictor] = LRUCache(max(size, 1))  # 0 would refuse all
        self.lock = threading.Lock()  # routes resolve their targets in worker threads

    def get(self, version: ModelVersion, onnx_file: Callable[[], Path]) -> Predictor:
        """The version's session; on a miss, `onnx_file()` gives its checked local copy."""
        with self.lock:
            predictor = self.entries.get(version.id)
        if predictor is None:
            # Loaded outside the lock; only files this service wrote, matching the card's sha256.
            predictor = Predictor.load(onnx_file())
            with self.lock:
                self.entries[version.id] = predictor
        return predictor


@dataclass(frozen=True)
class ServingTarget:
    """A resolved, servable model version with its loaded session and batching policy."""

    model: str
    version: ModelVersion
    predictor: Predictor
    policy: BatchPolicy

    @property
    def card(self) -> dict[str, Any]:
        return self.version.card


@dataclass(frozen=True)
class Artifact:
    path: Path
    filename: str
    sha256: str


def positive_version(value: str) -> int:
    """A version number from a URL path, refused in the API's own words."""
    if not value.isdigit() or int(value) < 1:
        raise Invalid(f"version: expected a positive integer, received {value!r}",
                      [{"field": "version", "value": value}])
    return int(value)


class RegistryService:
    def __init__(self, session: Session, settings: Settings):
        self.settings = settings
        self.models = ModelRepository(session)
        self.store = open_store(settings)

    def publish(self, job: Job, manifest: dict[str, Any], artifact_dir: str,
                max_abs_diff: float) -> int:
        """Register the job's model as the next version of its name; returns its number.

        `artifact_dir` is the name the artifact store gave the model's files (`store_model`).

        Runs in the caller's transaction, which also marks the job succeeded: a job is never
        succeeded without its version, nor registered twice.
        """
        name = manifest["model_name"]
        # Reserved at submit; a job queued before names were reserved takes it here, if free.
        if self.models.reserve(name, job.owner_id) != job.owner_id:
            raise Conflict(f"model '{name}' belongs to another user: this job's model was not "
                           "published", [{"field": "model.name", "value": name}])
        model = self.models.get(name, with_versions=False)
        assert model is not None  # reserved just above
        tolerance = self.settings.parity_tolerance
        version = self.models.add_version(
            model, job_id=job.id, framework=manifest["framework"],
            artifact_dir=artifact_dir,
            card={**manifest, "export_parity": {"max_abs_diff": max_abs_diff,
                                                "tolerance": tolerance}},
            onnx_max_abs_diff=max_abs_diff,
            servable=max_abs_diff <= tolerance,
        )
        return version.version

    def visible(self, principal: Principal) -> list[RegisteredModel]:
        return self.models.visible_to(principal.owner_filter())

    def get(self, principal: Principal, name: str, with_versions: bool = True
            ) -> RegisteredModel:
        model = self.models.get(name, with_versions)
        if model is None:
            raise NotFound(f"model '{name}' not found", [{"field": "name", "value": name}])
        principal.check_model(name, model.owner_id, model.public)
        return model

    def _owned(self, principal: Principal, name: str, with_versions: bool = True
               ) -> RegisteredModel:
        model = self.get(principal, name, with_versions)
        principal.check_owner(model.owner_id)
        return model

    def policy(self, model: RegisteredModel) -> BatchPolicy:
        return BatchPolicy(
            max_batch_size=model.max_batch_size or self.settings.batch_max_size,
            max_delay_ms=(model.max_delay_ms if model.max_delay_ms is not None
                          else self.settings.batch_max_delay_ms))

    def update(self, principal: Principal, name: str,
               batching: dict[str, int | float | None], public: bool | None) -> RegisteredModel:
        """The owner's settings: `batching` (`max_batch_size` / `max_delay_ms`, None restores
        the default) and `public` (every member may read the model and predict with it)."""
        model = self._owned(principal, name)
        for setting, value in batching.items():
            setattr(model, setting, value)
        if public is not None:
            model.public = public
        return model

    def resolve(self, principal: Principal, name: str, version: int | None = None,
                alias: str | None = None) -> ModelVersion:
        """`version`, else `alias`, else the default version (`default_version`)."""
        model = self.get(principal, name, with_versions=False)
        if version is not None:
            found = self.models.get_version(model, version)
            if found is None:
                raise NotFound(f"model '{name}' has no version {version}",
                               [{"field": "version", "value": version}])
            return found
        if alias is not None:
            found = self.models.aliased_version(model, alias)
            if found is None:
                raise NotFound(f"model '{name}' has no alias '{alias}'",
                               [{"field": "alias", "value": alias}])
            return found
        found = self.default_version(model)
        if found is None:
            raise NotFound(f"model '{name}' has no version yet",
                           [{"field": "version", "value": None}])
        return found

    def default_version(self, model: RegisteredModel) -> ModelVersion | None:
        """What a prediction naming no version gets: the `production` alias's version, else the
        latest version the training coach did not flag, else (every one flagged) the latest."""
        aliased = self.models.aliased_version(model, DEFAULT_ALIAS)
        if aliased is not None:
            return aliased
        versions = self.models.versions_newest_first(model)
        return next((v for v in versions if not v.card.get("coach")),
                    versions[0] if versions else None)

    def card(self, principal: Principal, name: str, version: int) -> dict[str, Any]:
        model = self.get(principal, name)
        found = self.resolve(principal, name, version=version)
        default = self.resolve(principal, name)
        return {
            **found.card,
            "name": name, "version": found.version, "job_id": found.job_id,
            "created_at": found.created_at, "servable": found.servable,
            "aliases": [a.alias for a in model.aliases if a.version_id == found.id],
            "formats": available_formats(found.card),
            "coach": found.card.get("coach", []),
            "served_by_default": default.id == found.id,
            "publishing": _publishing(found, default),
        }

    def set_alias(self, principal: Principal, name: str, alias: str,
                  version: int) -> dict[str, Any]:
        principal.check_person()
        if not ALIAS_PATTERN.fullmatch(alias):
            raise Invalid(f"alias: expected up to 64 letters, digits, '.', '_' or '-' starting "
                          f"with a letter, received {alias!r}", [{"field": "alias",
                                                                  "value": alias}])
        model = self._owned(principal, name, with_versions=False)
        target = self.resolve(principal, name, version=version)
        self.models.set_alias(model, alias, target, principal.id)
        return self.alias(principal, name, alias)

    def alias(self, principal: Principal, name: str, alias: str) -> dict[str, Any]:
        """Where the alias points (None once removed) and every move it made."""
        model = self.get(principal, name, with_versions=False)
        current = self.models.aliased_version(model, alias)
        history = [{"version": e.version, "previous_version": e.previous_version,
                    "user_id": e.user_id, "at": e.at}
                   for e in self.models.alias_history(model, alias)]
        if current is None and not history:
            raise NotFound(f"model '{name}' has no alias '{alias}'",
                           [{"field": "alias", "value": alias}])
        return {"model": name, "alias": alias,
                "version": current.version if current is not None else None, "history": history}

    def remove_alias(self, principal: Principal, name: str, alias: str) -> None:
        """Predictions that named it get 404; without `production`, they use the latest."""
        model = self._owned(principal, name, with_versions=False)
        if self.models.remove_alias(model, alias, principal.id) is None:
            raise NotFound(f"model '{name}' has no alias '{alias}'",
                           [{"field": "alias", "value": alias}])

    def artifact(self, principal: Principal, name: str, version: int, fmt: str) -> Artifact:
        """A downloadable file of the version, checked against the sha256 on its card."""
        found = self.resolve(principal, name, version=version)
        formats = available_formats(found.card)
        if fmt not in formats:
            raise NotFound(f"format: model '{name}' version {found.version} has no '{fmt}' "
                           f"artifact; available: {', '.join(formats)}",
                           [{"field": "format", "value": fmt, "available": formats}])
        filename = FORMAT_FILES[fmt]
        try:
            path = self.store.model_file(found.artifact_dir, found.card, filename)
        except ArtifactIntegrityError as error:
            raise Conflict(f"model '{name}' version {found.version}: {error}") from None
        suffix = Path(filename).suffix
        return Artifact(path=path, filename=f"{name}-v{found.version}{suffix}",
                        sha256=found.card["files"][filename])

    def serving_target(self, principal: Principal, name: str, version: int | None,
                       alias: str | None, cache: PredictorCache) -> ServingTarget:
        """The version to serve, refused with 409 when its export does not match."""
        found = self.resolve(principal, name, version, alias)
        if not found.servable:
            raise Conflict(
                f"model '{name}' version {found.version} is not served: its ONNX export "
                f"differs from the trained model by {found.onnx_max_abs_diff:.3g} (tolerance "
                f"{found.card['export_parity']['tolerance']:g})",
                [{"field": "version", "value": found.version}])
        try:
            predictor = cache.get(found, lambda: self.store.model_file(
                found.artifact_dir, found.card, ONNX_FILE))
        except ArtifactIntegrityError as error:
            raise Conflict(f"model '{name}' version {found.version}: {error}") from None
        return ServingTarget(model=name, version=found, predictor=predictor,
                             policy=self.policy(found.model))


def _publishing(version: ModelVersion, default: ModelVersion) -> str:
    """Why the version is, or is not, what a prediction naming no version gets."""
    flagged = bool(version.card.get("coach"))
    if default.id == version.id:
        return ("Served by default." if not flagged else
                "Served by default although the training coach flagged it: no other version "
                "is unflagged.")
    if flagged:
        return (f"Not served by default: the training coach flagged it (see `coach`); version "
                f"{default.version} is. Ask for version {version.version}, or point the "
                f"`{DEFAULT_ALIAS}` alias at it, to serve it.")
    return f"Not served by default: version {default.version} is."
