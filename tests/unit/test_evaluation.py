"""The evaluation report (ml.evaluation) against hand-computed cases and scikit-learn."""

import numpy as np
import pytest
from sklearn.metrics import classification_report, confusion_matrix, roc_auc_score

from ml.evaluation import MISCLASSIFIED_LIMIT, MISCLASSIFIED_PER_CELL, evaluate, summary


def one_hot_like(predicted: list[int], classes: int) -> np.ndarray:
    """Probabilities whose largest is the predicted class: [n, classes]."""
    outputs = np.full((len(predicted), classes), 0.1, dtype=np.float32)
    outputs[np.arange(len(predicted)), predicted] = 0.8
    return outputs


def test_a_three_class_report_matches_the_hand_computed_one():
    truth = np.array([0, 0, 1, 1, 2, 2])
    outputs = one_hot_like([0, 1, 1, 1, 2, 0], 3)
    features = np.arange(6 * 2, dtype=np.float32).reshape(6, 2) + 0.5
    report = evaluate("categorical_crossentropy", outputs, truth, ["a", "b", "c"], features,
                      np.arange(10, 16))
    assert report["classes"] == ["a", "b", "c"] and report["samples"] == 6
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    precision = [c["precision"] for c in report["per_class"]]
    recall = [c["recall"] for c in report["per_class"]]
    f1 = [c["f1"] for c in report["per_class"]]
    assert precision == pytest.approx([1 / 2, 2 / 3, 1.0])
    assert recall == pytest.approx([1 / 2, 1.0, 1 / 2])
    assert f1 == pytest.approx([1 / 2, 4 / 5, 2 / 3])
    assert [c["support"] for c in report["per_class"]] == [2, 2, 2]
    assert report["macro"] == pytest.approx({"precision": 13 / 18, "recall": 2 / 3,
                                             "f1": (1 / 2 + 4 / 5 + 2 / 3) / 3})
    assert report["weighted"] == pytest.approx(report["macro"])  # equal supports
    assert report["roc"] is None and report["pr"] is None and not report["per_time_step"]
    assert report["misclassified_total"] == 2
    assert report["misclassified"] == [
        {"index": 11, "true": "a", "predicted": "b", "probabilities": [0.1, 0.8, 0.1],
         "features": [2.5, 3.5]},
        {"index": 15, "true": "c", "predicted": "a", "probabilities": [0.8, 0.1, 0.1],
         "features": [10.5, 11.5]}]
    assert summary(report) == {"task": "classification", "samples": 6,
                               "accuracy": report["accuracy"],
                               "macro_f1": report["macro"]["f1"], "roc_auc": None}


def test_a_binary_report_has_roc_and_pr_curves_with_their_areas():
    truth = np.array([0.0, 0.0, 1.0, 1.0])
    positive = np.array([[0.1], [0.4], [0.35], [0.8]], dtype=np.float32)  # [n, 1]
    report = evaluate("binary_crossentropy", positive, truth, ["no", "yes"])
    assert report["accuracy"] == pytest.approx(3 / 4)  # 0.35 < 0.5: called "no"
    assert report["confusion_matrix"] == [[2, 0], [1, 1]]
    assert report["roc"]["auc"] == pytest.approx(0.75)  # 3 of 4 (positive, negative) pairs
    assert report["roc"]["fpr"][0] == 0.0 and report["roc"]["tpr"][-1] == 1.0
    # Precision-recall points (recall, precision) by falling threshold: (0, 1), (.5, 1) at
    # 0.8, (.5, .5) at 0.4, (1, 2/3) at 0.35, (1, .5) at 0.1; the trapezoids' area under them.
    assert report["pr"]["auc"] == pytest.approx(0.5 * 1 + 0.5 * (1 / 2 + 2 / 3) / 2)
    assert report["misclassified"][0]["probabilities"] == pytest.approx([0.65, 0.35])


def test_classification_agrees_with_scikit_learn_on_random_predictions():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, 300)
    outputs = rng.dirichlet(np.ones(4), 300).astype(np.float32)
    report = evaluate("categorical_crossentropy", outputs, truth, list("wxyz"))
    predicted = outputs.argmax(axis=1)
    assert report["confusion_matrix"] == confusion_matrix(truth, predicted).tolist()
    reference = classification_report(truth, predicted, output_dict=True)
    for index, row in enumerate(report["per_class"]):
        expected = reference[str(index)]
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx(
            (expected["precision"], expected["recall"], expected["f1-score"],
             expected["support"]))
    for average in ("macro", "weighted"):
        expected = reference[f"{average} avg"]
        assert report[average] == pytest.approx({"precision": expected["precision"],
                                                 "recall": expected["recall"],
                                                 "f1": expected["f1-score"]})
    assert np.sum(report["confusion_matrix"], axis=1).tolist() == \
        [row["support"] for row in report["per_class"]]


def test_binary_auc_agrees_with_scikit_learn_and_curves_are_thinned():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, 2000).astype(np.float32)
    positive = np.clip(truth * 0.3 + rng.random(2000) * 0.7, 0, 1)[:, None]
    report = evaluate("binary_crossentropy", positive, truth, ["0", "1"])
    assert report["roc"]["auc"] == pytest.approx(roc_auc_score(truth, positive[:, 0]))
    assert len(report["roc"]["fpr"]) <= 200 and len(report["pr"]["recall"]) <= 200


def test_misclassified_samples_are_capped_per_cell_and_in_all():
    classes = [str(c) for c in range(12)]
    truth = np.repeat(np.arange(12), 30)  # 30 of each class, every one called the next class
    report = evaluate("categorical_crossentropy", one_hot_like(list((truth + 1) % 12), 12),
                      truth, classes, np.zeros((360, 8, 8, 1), dtype=np.float32))
    assert report["misclassified_total"] == 360
    kept = report["misclassified"]
    assert len(kept) == MISCLASSIFIED_LIMIT
    per_cell = {}
    for sample in kept:
        per_cell[(sample["true"], sample["predicted"])] = \
            per_cell.get((sample["true"], sample["predicted"]), 0) + 1
        assert np.shape(sample["features"]) == (8, 8, 1)
    assert max(per_cell.values()) == MISCLASSIFIED_PER_CELL


def test_large_samples_are_listed_without_their_features():
    report = evaluate("categorical_crossentropy", one_hot_like([1], 2), np.array([0]),
                      ["0", "1"], np.zeros((1, 100, 100), dtype=np.float32))
    assert "features" not in report["misclassified"][0]


def test_a_class_per_time_step_is_flattened_over_the_steps():
    truth = np.array([[0, 1, 1], [1, 0, 0]])  # [2 samples, 3 steps]
    outputs = one_hot_like([0, 1, 0, 1, 0, 1], 2).reshape(2, 3, 2)
    report = evaluate("categorical_crossentropy", outputs, truth, ["off", "on"],
                      indices=np.array([7, 9]))
    assert report["per_time_step"] and report["steps"] == 3 and report["samples"] == 2
    assert "time step" in report["note"]
    assert report["confusion_matrix"] == [[2, 1], [1, 2]]
    assert [(m["index"], m["step"], m["true"]) for m in report["misclassified"]] == [
        (7, 2, "on"), (9, 2, "off")]


def test_a_regression_report_matches_the_hand_computed_one():
    truth = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)
    outputs = np.array([[1.5], [2.0], [2.0], [5.0]], dtype=np.float32)
    report = evaluate("mse", outputs, truth, indices=np.array([3, 1, 4, 5]))
    assert report["task"] == "regression" and report["samples"] == 4
    assert report["mae"] == pytest.approx(0.625)
    assert report["rmse"] == pytest.approx(0.75)
    assert report["r2"] == pytest.approx(1 - 2.25 / 5)
    assert report["residuals"] == [
        {"index": 3, "predicted": 1.5, "residual": -0.5},
        {"index": 1, "predicted": 2.0, "residual": 0.0},
        {"index": 4, "predicted": 2.0, "residual": 1.0},
        {"index": 5, "predicted": 5.0, "residual": -1.0}]
    assert summary(report) == {"task": "regression", "samples": 4, "mae": 0.625,
                               "rmse": 0.75, "r2": report["r2"]}


def test_residuals_are_thinned_evenly():
    truth = np.arange(5000, dtype=np.float32)
    report = evaluate("mae", truth[:, None] + 1, truth)
    residuals = report["residuals"]
    assert len(residuals) == 500 and residuals[0]["index"] == 0 \
        and residuals[-1]["index"] == 4999
    assert report["mae"] == pytest.approx(1.0) and report["rmse"] == pytest.approx(1.0)
