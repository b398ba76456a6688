"""Evaluate a published version on a dataset with its served ONNX graph: the report of
`ml.evaluation`, for data the model may never have seen."""

import math
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from core.errors import Invalid
from core.services.auth import Principal
from core.services.datasets import DatasetService
from core.services.registry import PredictorCache, RegistryService
from core.settings import Settings
from ml.datasets import Dataset, split
from ml.evaluation import evaluate

# Samples per call of the ONNX graph: large datasets are run in pieces of bounded memory.
CHUNK = 1024


class EvaluationService:
    def __init__(self, session: Session, settings: Settings, predictors: PredictorCache):
        self.session, self.settings, self.predictors = session, settings, predictors

    def evaluate(self, principal: Principal, name: str, version: int,
                 dataset_id: str) -> dict[str, Any]:
        """The owner's version on `dataset_id`: on its test split when it is the data the
        version was trained on, else on every sample; 422 names what does not fit."""
        registry = RegistryService(self.session, self.settings)
        principal.check_owner(registry.get(principal, name, with_versions=False).owner_id)
        target = registry.serving_target(principal, name, version, None, self.predictors)
        card = target.card
        datasets = DatasetService(self.session, self.settings)
        schema = datasets.schema(principal, dataset_id)
        dataset = datasets.load(dataset_id, schema["sha256"])
        targets = _targets(card, dataset)
        if dataset.schema["sha256"] == card["dataset"]["sha256"]:
            record = card["dataset"]["split"]
            indices = split(dataset, record["seed"], record["validation_split"]).test
            part = "test"
        else:
            indices, part = np.arange(len(dataset.x)), "all"
        raw = dataset.x[indices].reshape(len(indices), *card["input"]["shape"])  # float32
        outputs = np.concatenate([target.predictor.predict(raw[start:start + CHUNK])
                                  for start in range(0, len(raw), CHUNK)])
        report = evaluate(card["spec"]["model"]["objective"], outputs, targets[indices],
                          card["class_names"], dataset.x[indices], indices)
        return {**report, "split": part, "dataset": dataset_id, "model": name,
                "version": target.version.version}


def _targets(card: dict[str, Any], dataset: Dataset) -> np.ndarray:
    """The dataset's targets in the version's terms (its class numbers), or a 422 naming the
    mismatch: feature count, task, unknown class labels, target size."""
    def refuse(problem: str, **detail: Any) -> Invalid:
        return Invalid(f"dataset: '{dataset.id}' {problem}",
                       [{"field": "dataset", "value": dataset.id, **detail}])

    expected = math.prod(card["input"]["shape"])
    features = math.prod(dataset.x.shape[1:])
    if features != expected:
        raise refuse(f"has {features} features per sample {list(dataset.x.shape[1:])}; the "
                     f"model takes {expected} {card['input']['shape']}",
                     expected=expected, received=features)
    if dataset.task != card["task"]:
        raise refuse(f"is a {dataset.task} dataset; the model does {card['task']}",
                     expected=card["task"], received=dataset.task)
    if card["task"] == "regression":
        outputs = math.prod(card["output"]["shape"])
        values = math.prod(dataset.y.shape[1:])
        if values != outputs:
            raise refuse(f"has {values} target values per sample; the model outputs {outputs}",
                         expected=outputs, received=values)
        return dataset.y
    classes: list[str] = card["class_names"]
    used = [dataset.class_names[i] for i in np.unique(dataset.y)] if dataset.class_names else []
    unknown = [label for label in used if label not in classes]
    if unknown:
        raise refuse(f"has class labels the model does not know: {unknown} (it knows "
                     f"{classes})", expected=classes, received=unknown)
    assert dataset.class_names is not None  # a classification dataset names its classes
    steps_expected = card["output"]["shape"][:-1]
    if list(dataset.y.shape[1:]) != steps_expected:
        raise refuse(f"has targets of shape {list(dataset.y.shape[1:])} per sample; the model "
                     f"predicts {steps_expected or 'one class'}",
                     expected=steps_expected, received=list(dataset.y.shape[1:]))
    to_model = np.array([classes.index(name) if name in classes else -1
                         for name in dataset.class_names])
    mapped: np.ndarray = to_model[dataset.y]
    return mapped
