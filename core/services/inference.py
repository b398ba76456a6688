"""Predictions: resolve the version to serve, check the instances, run them batched."""

import asyncio
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from core.errors import Invalid
from core.services.auth import Principal
from core.services.registry import PredictorCache, RegistryService, ServingTarget
from core.settings import Settings
from ml.serving import AdaptiveBatcher, InstanceError, to_batch


class InferenceService:
    """The async face of the registry for the predict routes.

    Database work and instance conversion run in a thread; inference goes through the
    process's adaptive batcher. Both keep the event loop free.
    """

    def __init__(self, session: Session, settings: Settings, cache: PredictorCache,
                 batcher: AdaptiveBatcher):
        self.settings = settings
        self.registry = RegistryService(session, settings)
        self.cache, self.batcher = cache, batcher

    async def target(self, principal: Principal, name: str, version: int | None = None,
                     alias: str | None = None) -> ServingTarget:
        return await asyncio.to_thread(self.registry.serving_target, principal, name,
                                       version, alias, self.cache)

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
        batch = await asyncio.to_thread(_instances_batch, instances, target.card)
        outputs, batch_size = await self.run(target, batch)
        return {"model": name, "version": target.version.version,
                **_format(target.card, outputs)}, batch_size


def _instances_batch(instances: list[Any], card: dict) -> np.ndarray:
    try:
        return to_batch(instances, card["input"]["shape"])
    except InstanceError as error:
        raise Invalid(str(error), [{"field": f"instances[{error.index}]",
                                    "value": instances[error.index]}]) from None


def _format(card: dict, outputs: np.ndarray) -> dict[str, Any]:
    classes = card.get("class_names")
    if card["task"] != "classification":
        return {"predictions": outputs.tolist()}
    if outputs.shape[-1] == 1:  # one logistic unit: probability of the second class
        outputs = np.concatenate([1.0 - outputs, outputs], axis=-1)
    return {"predictions": [classes[i] for i in outputs.argmax(axis=-1)],
            "probabilities": outputs.round(6).tolist(), "classes": classes}
