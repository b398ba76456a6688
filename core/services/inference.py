"""Predictions: resolve the version to serve, check the instances, run them batched."""

import asyncio
from typing import Any

import numpy as np

from core.cache import ExpiringCache
from core.db import session_scope
from core.errors import Invalid
from core.services.auth import Principal
from core.services.registry import PredictorCache, RegistryService, ServingTarget
from core.settings import Settings
from ml.serving import AdaptiveBatcher, InstanceError, to_batch

# What a resolved version is cached by: who asks, the model, and the version or alias asked for.
TargetKey = tuple[int, str, int | None, str | None]


class InferenceService:
    """The async face of the registry for the predict routes.

    The version a request resolves to is looked up in SQL (in a thread) and then reused for
    `lookup_cache_s`; inference goes through the process's adaptive batcher.
    """

    def __init__(self, settings: Settings, predictors: PredictorCache,
                 targets: ExpiringCache[TargetKey, ServingTarget], batcher: AdaptiveBatcher):
        self.settings = settings
        self.predictors, self.targets, self.batcher = predictors, targets, batcher

    async def target(self, principal: Principal, name: str, version: int | None = None,
                     alias: str | None = None) -> ServingTarget:
        return await self.targets.get_or_load(
            (principal.id, name, version, alias),
            lambda: asyncio.to_thread(self._resolve, principal, name, version, alias))

    def _resolve(self, principal: Principal, name: str, version: int | None,
                 alias: str | None) -> ServingTarget:
        with session_scope(self.settings) as session:
            return RegistryService(session, self.settings).serving_target(
                principal, name, version, alias, self.predictors)

    def forget(self, name: str) -> None:
        """Drop what this process resolved for a model whose aliases or settings changed."""
        self.targets.discard(lambda key: key[1] == name)

    def check_batch_size(self, count: int, field: str) -> None:
        if count > self.settings.max_predict_batch:
            raise Invalid(f"{field}: {count} instances exceed the limit of "
                          f"{self.settings.max_predict_batch}", [{"field": field,
                                                                  "value": count}])

    async def run(self, target: ServingTarget, batch: np.ndarray) -> tuple[np.ndarray, int]:
        """Outputs for `batch` and the size of the merged batch that computed them."""
        return await self.batcher.predict(target.version.id, target.predictor, batch,
                                          target.policy)

    async def predict(self, principal: Principal, name: str, instances: list[Any],
                      version: int | None, alias: str | None) -> tuple[dict[str, Any], int]:
        """The `/predict` answer and the batch size used."""
        self.check_batch_size(len(instances), "instances")
        target = await self.target(principal, name, version, alias)
        # Inline, like FastAPI's own parsing of the same body: cheaper than a thread hop.
        batch = _instances_batch(instances, target.card)
        outputs, batch_size = await self.run(target, batch)
        return {"model": name, "version": target.version.version,
                **_format(target.card, outputs)}, batch_size


def _instances_batch(instances: list[Any], card: dict[str, Any]) -> np.ndarray:
    try:
        return to_batch(instances, card["input"]["shape"])
    except InstanceError as error:
        raise Invalid(str(error), [{"field": f"instances[{error.index}]",
                                    "value": instances[error.index]}]) from None


def _format(card: dict[str, Any], outputs: np.ndarray) -> dict[str, Any]:
    if card["task"] != "classification":
        return {"predictions": outputs.tolist()}
    classes: list[str] = card["class_names"]
    if outputs.shape[-1] == 1:  # one logistic unit: probability of the second class
        outputs = np.concatenate([1.0 - outputs, outputs], axis=-1)
    # [batch] names, or [batch, steps] for a class per time step.
    return {"predictions": np.asarray(classes)[outputs.argmax(axis=-1)].tolist(),
            # Rounded as doubles: a float32 rounded to 6 places prints with 17 digits.
            "probabilities": outputs.astype(np.float64).round(6).tolist(), "classes": classes}
