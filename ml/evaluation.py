"""The evaluation report of a trained model on held-out samples: what it gets right and wrong.

Pure numpy (and scikit-learn's metrics) on the model's final outputs, so it is the same for
every backend and for the served ONNX graph. The report's JSON shape is the one
`GET /jobs/{id}/evaluation` answers.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

from ml.datasets import readable

# Misclassified samples kept: at most this many per (true, predicted) cell of the confusion
# matrix, and this many in all, so every cell a user clicks shows some and the report stays small.
MISCLASSIFIED_PER_CELL = 10
MISCLASSIFIED_LIMIT = 100
# A kept sample carries its raw features (to be drawn or listed) up to this many values.
SAMPLE_MAX_VALUES = 4096
# ROC and precision-recall curves, and residuals, are thinned to this many points.
CURVE_POINTS = 200
RESIDUAL_POINTS = 500

EVALUATION_FILE = "evaluation.json"


def evaluate(objective: str, outputs: np.ndarray, targets: np.ndarray,
             class_names: Sequence[str] | None = None, features: np.ndarray | None = None,
             indices: np.ndarray | None = None) -> dict[str, Any]:
    """The report of `outputs` (the model's final outputs, probabilities for classification)
    against `targets`, for the task `objective` trains.

    outputs: [n, k] class probabilities (categorical), [n, 1] the second class's probability
    (binary), or a target's values (regression); with a time axis, [n, steps, ...], a class
    per step, flattened over the steps. `features` ([n, ...], raw) and `indices` ([n], each
    sample's place in its dataset) describe the misclassified samples and residuals.
    """
    count = len(outputs)
    if indices is None:
        indices = np.arange(count)
    if objective in ("categorical_crossentropy", "binary_crossentropy"):
        if class_names is None:
            raise ValueError("a classification report needs its class names")
        return _classification(objective, outputs, targets, list(class_names), features,
                               indices)
    return _regression(outputs, targets, indices)


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of a report, as a model card shows them."""
    if report["task"] == "classification":
        return {"task": "classification", "samples": report["samples"],
                "accuracy": report["accuracy"], "macro_f1": report["macro"]["f1"],
                "roc_auc": report["roc"]["auc"] if report["roc"] else None}
    return {"task": "regression", "samples": report["samples"], "mae": report["mae"],
            "rmse": report["rmse"], "r2": report["r2"]}


def _classification(objective: str, outputs: np.ndarray, targets: np.ndarray,
                    classes: list[str], features: np.ndarray | None,
                    indices: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    count = len(outputs)
    if objective == "binary_crossentropy":
        positive = outputs.reshape(-1).astype(np.float64)  # [n * steps]
        probabilities = np.stack([1.0 - positive, positive], axis=1)  # [n * steps, 2]
        truth = (targets.reshape(-1) > 0.5).astype(np.int64)
    else:
        probabilities = outputs.reshape(-1, outputs.shape[-1]).astype(np.float64)
        truth = targets.reshape(-1).astype(np.int64)
    steps = len(truth) // count if count else 1
    # Ties go to the first class: for binary, p = 0.5 is the negative class, as `score` says.
    predicted = probabilities.argmax(axis=1)
    labels = list(range(len(classes)))
    matrix = confusion_matrix(truth, predicted, labels=labels)  # rows true, columns predicted
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=labels, zero_division=0)
    averages = {}
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(truth, predicted, labels=labels,
                                                     average=average, zero_division=0)
        averages[average] = {"precision": float(p), "recall": float(r), "f1": float(f)}
    wrong = np.flatnonzero(predicted != truth)
    report: dict[str, Any] = {
        "task": "classification", "split": "test", "samples": count,
        "per_time_step": steps > 1,
        **({"steps": steps, "note": f"a class per time step: the {count} samples' "
                                    f"{len(truth)} steps are counted one by one"}
           if steps > 1 else {}),
        "classes": classes,
        "accuracy": float(np.mean(predicted == truth)) if len(truth) else 0.0,
        "confusion_matrix": matrix.tolist(),
        "per_class": [{"class": name, "precision": float(precision[i]),
                       "recall": float(recall[i]), "f1": float(f1[i]),
                       "support": int(support[i])} for i, name in enumerate(classes)],
        "macro": averages["macro"], "weighted": averages["weighted"],
        "roc": None, "pr": None,
        "misclassified_total": int(len(wrong)),
        "misclassified": _misclassified(wrong, steps, truth, predicted, probabilities,
                                        classes, features, indices),
    }
    if len(classes) == 2 and len(np.unique(truth)) == 2:  # curves need both classes present
        report["roc"], report["pr"] = _binary_curves(truth, probabilities[:, 1])
    return report


def _misclassified(wrong: np.ndarray, steps: int, truth: np.ndarray, predicted: np.ndarray,
                   probabilities: np.ndarray, classes: list[str],
                   features: np.ndarray | None, indices: np.ndarray) -> list[dict[str, Any]]:
    """The first misclassified predictions of each cell, in test order, up to the limits."""
    per_cell: dict[tuple[int, int], int] = {}
    kept: list[dict[str, Any]] = []
    draw = features is not None and features[0].size <= SAMPLE_MAX_VALUES
    for flat in wrong:
        cell = (int(truth[flat]), int(predicted[flat]))
        if per_cell.get(cell, 0) >= MISCLASSIFIED_PER_CELL:
            continue
        per_cell[cell] = per_cell.get(cell, 0) + 1
        sample = int(flat) // steps
        entry: dict[str, Any] = {
            "index": int(indices[sample]), "true": classes[cell[0]],
            "predicted": classes[cell[1]],
            "probabilities": [round(float(p), 4) for p in probabilities[flat]],
        }
        if steps > 1:
            entry["step"] = int(flat) % steps
        if draw:
            assert features is not None
            entry["features"] = readable(features[sample])
        kept.append(entry)
        if len(kept) == MISCLASSIFIED_LIMIT:
            break
    return kept


def _binary_curves(truth: np.ndarray, positive: np.ndarray
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    """ROC and precision-recall curves of the second class's probability, with their areas
    (the areas from the full curves, the points thinned)."""
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    fpr, tpr, _ = roc_curve(truth, positive)
    precision, recall, _ = precision_recall_curve(truth, positive)
    roc = {"auc": float(auc(fpr, tpr)), "fpr": _thin(fpr), "tpr": _thin(tpr)}
    pr = {"auc": float(auc(recall, precision)), "precision": _thin(precision),
          "recall": _thin(recall)}
    return roc, pr


def _regression(outputs: np.ndarray, targets: np.ndarray,
                indices: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import r2_score

    count = len(outputs)
    predicted = outputs.reshape(-1).astype(np.float64)  # [n * values]: every output counts
    truth = targets.reshape(predicted.shape).astype(np.float64)
    residual = truth - predicted
    values = len(predicted) // count if count else 1
    keep = _thinned_positions(len(predicted), RESIDUAL_POINTS)
    return {
        "task": "regression", "split": "test", "samples": count,
        "outputs_per_sample": values,
        "mae": float(np.mean(np.abs(residual))),
        "rmse": float(np.sqrt(np.mean(residual ** 2))),
        "r2": float(r2_score(truth, predicted)) if len(truth) > 1 else None,
        # Residual = true − predicted, of at most RESIDUAL_POINTS predictions spread evenly.
        "residuals": [{"index": int(indices[position // values]),
                       "predicted": float(predicted[position]),
                       "residual": float(residual[position])} for position in keep],
    }


def _thinned_positions(length: int, points: int) -> np.ndarray:
    """At most `points` positions spread evenly over `length`, first and last included."""
    if length <= points:
        return np.arange(length)
    return np.unique(np.linspace(0, length - 1, points).round().astype(np.int64))


def _thin(values: np.ndarray) -> list[float]:
    return [round(float(v), 6) for v in values[_thinned_positions(len(values), CURVE_POINTS)]]
