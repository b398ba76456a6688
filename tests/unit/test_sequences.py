"""Sequence datasets and sequence outputs: the built-ins' content, validation against a target
per time step, per-step objectives and accuracy on both frameworks, and serving
`[batch, steps, …]` answers through `/predict` and v2."""

import hashlib

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.db import session_scope
from core.migrate import upgrade
from core.services.auth import AuthService
from core.services.training import TrainingService
from core.settings import Settings
from ml.backends import get_backend
from ml.datasets import BUILTINS, FORECAST_STEPS, load_builtin, split, split_record
from ml.errors import SpecError
from ml.spec import Draft, analyze, check_dataset_fit, parse_job_spec
from ml.training import prepare, score, train
from tests.conftest import example, native_outputs
from tests.unit.test_training import Recorder

REVERSE = load_builtin("builtin:reverse_sequence")
STEPS = REVERSE.schema["feature_shape"][0]


def seq2seq_job(framework: str = "pytorch", name: str = "reverse", epochs: int = 2,
                last_units: int = 10) -> dict:
    """An LSTM answering a class per time step on the reversal set."""
    return {
        "model": {"name": name, "input": {"shape": [STEPS, 1]},
                  "layers": [{"type": "lstm", "units": 16, "return_sequences": True,
                              "bidirectional": True},
                             {"type": "dense", "units": last_units, "activation": "softmax"}],
                  "objective": "categorical_crossentropy"},
        "training": {"optimizer": {"type": "adam", "learning_rate": 0.01}, "epochs": epochs,
                     "batch_size": 64, "seed": 5},
        "dataset": "builtin:reverse_sequence",
        "framework": framework,
    }


# --- the built-ins --------------------------------------------------------------------------


@pytest.mark.parametrize("dataset_id", ["builtin:digit_sequences", "builtin:reverse_sequence",
                                        "builtin:sine_forecast"])
def test_sequence_builtins_are_the_same_on_every_build(dataset_id):
    assert BUILTINS[dataset_id]().schema == BUILTINS[dataset_id]().schema


def test_digit_sequences_label_is_the_largest_digit_of_the_sequence():
    from sklearn.datasets import load_digits

    digits = load_digits()
    digit_of = {image.astype(np.float32).tobytes(): int(label)
                for image, label in zip(digits.images, digits.target, strict=True)}
    dataset = load_builtin("builtin:digit_sequences")
    assert dataset.schema["feature_shape"] == [3, 8, 8, 1]
    assert dataset.schema["task"] == "classification" and dataset.schema["kind"] == "sequence"
    assert dataset.schema["class_names"] == [str(d) for d in range(10)]
    assert dataset.schema["target_shape"] is None
    steps = np.array([[digit_of[image[..., 0].tobytes()] for image in sequence]
                      for sequence in dataset.x])
    assert np.array_equal(dataset.y, steps.max(axis=1))
    # No one step decides the label, and the classes are balanced.
    assert max(np.mean(steps[:, k] == dataset.y) for k in range(3)) < 0.6
    assert min(dataset.schema["class_counts"]) > 0.8 * len(dataset.y) / 10


def test_reverse_sequence_targets_are_the_sequence_reversed_one_class_per_step():
    schema = REVERSE.schema
    assert schema["feature_shape"] == [STEPS, 1] and schema["target_shape"] == [STEPS]
    assert schema["num_classes"] == 10
    assert sum(schema["class_counts"]) == schema["num_samples"] * STEPS
    assert np.array_equal(REVERSE.y, REVERSE.x[:, ::-1, 0].astype(np.int64))
    assert REVERSE.preview(1)[0]["target"] == [str(v) for v in REVERSE.y[0]]


def test_sine_forecast_targets_are_the_next_values_of_the_series():
    dataset = load_builtin("builtin:sine_forecast")
    assert dataset.schema["task"] == "regression"
    assert dataset.schema["target_shape"] == [FORECAST_STEPS]
    # The value k steps after window i is the last step of window i + k.
    for k in range(FORECAST_STEPS):
        np.testing.assert_array_equal(dataset.y[:-FORECAST_STEPS, k],
                                      dataset.x[k + 1:len(dataset.y) - FORECAST_STEPS + k + 1,
                                                -1, 0])


def test_a_class_per_step_is_split_unstratified_and_recorded_so():
    parts = split(REVERSE, 5, 0.2)
    assert len(np.unique(np.concatenate([parts.train, parts.validation, parts.test]))) \
        == len(REVERSE.x)
    assert split_record(REVERSE.schema, 5, 0.2)["stratified"] is False
    assert split_record(load_builtin("builtin:digit_sequences").schema, 5, 0.2)["stratified"]


# --- validation -----------------------------------------------------------------------------


def fit_issues(body: dict) -> list[dict]:
    spec = parse_job_spec(body)
    try:
        check_dataset_fit(spec, load_builtin(spec.dataset).schema, analyze(spec.model))
    except SpecError as error:
        return [{"field": i.path, "message": i.message, "value": i.value}
                for i in error.issues]
    return []


def test_per_step_outputs_fit_a_class_per_step_and_nothing_else():
    assert fit_issues(seq2seq_job()) == []
    issues = fit_issues(seq2seq_job(last_units=7))
    assert issues == [{"field": "model.layers[1].units", "value": 7, "message":
                       "7 outputs, but dataset 'builtin:reverse_sequence' has 10 classes "
                       "(expected 10)"}]

    one_per_sample = seq2seq_job()
    one_per_sample["model"]["layers"][0]["return_sequences"] = False
    assert fit_issues(one_per_sample) == [{
        "field": "model.layers[1]", "value": [10],
        "message": "the output has shape [10], but dataset 'builtin:reverse_sequence' asks "
                   f"for [{STEPS}, 10]: class scores at each of its {STEPS} time steps"}]

    on_digits = {**seq2seq_job(), "dataset": "builtin:digits"}
    on_digits["model"]["input"]["shape"] = [8, 8]
    assert fit_issues(on_digits) == [{
        "field": "model.layers[1]", "value": [8, 10],
        "message": "the output has shape [8, 10], but dataset 'builtin:digits' asks for [10]: "
                   "class scores for each sample"}]


def forecast_job(layers: list[dict], framework: str = "pytorch") -> dict:
    return {"model": {"name": "forecast", "input": {"shape": [20, 1]}, "layers": layers,
                      "objective": "mse"},
            "training": {"epochs": 2, "seed": 1}, "dataset": "builtin:sine_forecast",
            "framework": framework}


def test_a_forecast_is_one_value_per_step_with_or_without_a_trailing_axis():
    five = [{"type": "lstm", "units": 8}, {"type": "dense", "units": 5}]
    assert fit_issues(forecast_job(five)) == []
    per_step = [{"type": "lstm", "units": 8, "return_sequences": True},
                {"type": "reshape", "target_shape": [5, 32]},
                {"type": "dense", "units": 1}]
    assert fit_issues(forecast_job(per_step)) == []
    three = [{"type": "lstm", "units": 8}, {"type": "dense", "units": 3}]
    assert fit_issues(forecast_job(three)) == [{
        "field": "model.layers[1].units", "value": 3,
        "message": "3 outputs, but dataset 'builtin:sine_forecast' has targets of shape [5] "
                   "(expected 5)"}]


def test_an_output_of_more_than_two_axes_is_refused_without_a_dataset():
    body = {"model": {"name": "m", "input": {"shape": [8, 8, 1]},
                      "layers": [{"type": "conv2d", "filters": 2, "kernel_size": 3}],
                      "objective": "mse"}}
    with pytest.raises(SpecError, match=r"one vector per sample or one per time step, "
                                        r"received shape \[6, 6, 2\]"):
        analyze(parse_job_spec(body, Draft).model)


# --- objectives and metrics per step --------------------------------------------------------


def test_per_step_losses_and_accuracy_agree_between_the_frameworks():
    import torch

    from ml.backends.torch_backend import _metric_sum
    from ml.registry import KERAS, TORCH

    get_backend("tensorflow")  # registers Keras's objectives
    get_backend("pytorch")
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, STEPS, 10)).astype(np.float32)
    classes = rng.integers(0, 10, (4, STEPS))
    keras_loss = float(KERAS.objectives["categorical_crossentropy"]()(classes, logits))
    torch_loss = float(TORCH.objectives["categorical_crossentropy"](
        torch.from_numpy(logits), torch.from_numpy(classes)))
    assert abs(keras_loss - torch_loss) < 1e-5
    right = logits.argmax(-1) == classes
    accuracy = float(_metric_sum("categorical_crossentropy", torch.from_numpy(logits),
                                 torch.from_numpy(classes))) / len(logits)
    assert abs(accuracy - right.mean()) < 1e-6
    assert score(parse_job_spec(seq2seq_job()), logits, classes) == {"accuracy": right.mean()}

    values, targets = rng.normal(size=(2, 6, 5, 1)).astype(np.float32)
    for objective in ("mse", "mae"):
        keras_value = float(KERAS.objectives[objective]()(targets, values))
        torch_value = float(TORCH.objectives[objective](torch.from_numpy(values),
                                                        torch.from_numpy(targets)))
        assert abs(keras_value - torch_value) < 1e-5


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_a_forecast_with_a_trailing_axis_trains_on_targets_of_its_shape(framework):
    per_step = [{"type": "lstm", "units": 8}, {"type": "dense", "units": 5},
                {"type": "reshape", "target_shape": [5, 1]}]
    spec = parse_job_spec(forecast_job(per_step, framework))
    data = prepare(spec, load_builtin(spec.dataset))
    assert data.y_train.shape[1:] == (5, 1)
    recorder = Recorder()
    result = train(spec, data, recorder)
    # The mean absolute error of each value, not of a [5, 5] broadcast of them.
    outputs = get_backend(framework).predict(result.native, data.x_test)
    assert outputs.shape == (len(data.x_test), 5, 1)
    expected = float(np.mean(np.abs(outputs - data.y_test)))
    assert abs(result.test_metrics["test_mae"] - expected) < 1e-6
    assert [row.epoch for row in recorder.epochs] == [1, 2]
    assert all(row.mae is not None and row.val_mae is not None for row in recorder.epochs)


# --- training, publishing and serving -------------------------------------------------------


def encoder_decoder_job(framework: str) -> dict:
    """Two epochs of the seq2seq example: embedding, encoder, repeat_vector, decoder and a
    time_distributed head."""
    body = example("seq2seq-reverse.json")
    body["model"]["name"] = "reverse"
    body["training"]["epochs"] = 2
    return {**body, "framework": framework}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`reverse` v1 trained by torch and v2 by TensorFlow, each answering a class per step."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("sequences") / "data")
    settings.ensure_dirs()
    upgrade(settings)
    with session_scope(settings) as session:
        key = AuthService(session).bootstrap_admin(settings)
    client = TestClient(create_app(settings))
    client.headers["Authorization"] = f"Bearer {key}"
    for framework in ("pytorch", "tensorflow"):
        response = client.post("/jobs", json=encoder_decoder_job(framework))
        assert response.status_code == 202, response.text
        TrainingService(settings).run(response.json()["id"], "unit-worker")
        job = client.get(f"/jobs/{response.json()['id']}").json()
        assert job["status"] == "succeeded", job["failure_reason"]
        rows = client.get(f"/jobs/{job['id']}/metrics").json()
        assert all(0 <= row["accuracy"] <= 1 and 0 <= row["val_accuracy"] <= 1
                   for row in rows), rows
    return client


@pytest.mark.parametrize("version", [1, 2])
def test_a_class_per_step_is_served_as_names_per_step(served, version, tmp_path):
    card = served.get(f"/models/reverse/versions/{version}").json()
    assert card["output"] == {"shape": [STEPS, 10], "dtype": "float32"}
    assert card["servable"] and card["class_names"] == [str(v) for v in range(10)]
    assert 0 <= card["metrics"]["test"]["test_accuracy"] <= 1
    weights = served.get(f"/models/reverse/versions/{version}/artifacts/safetensors")
    assert hashlib.sha256(weights.content).hexdigest() == weights.headers["X-Capas-Sha256"]
    (tmp_path / "weights.safetensors").write_bytes(weights.content)
    raw = REVERSE.x[:5].reshape(5, STEPS)  # in the model's input shape: ids for the embedding
    native = native_outputs(card, tmp_path / "weights.safetensors", raw)  # [5, steps, 10]

    answer = served.post("/models/reverse/predict",
                         json={"instances": raw.tolist(), "version": version}).json()
    assert answer["predictions"] == [[str(c) for c in row] for row in native.argmax(axis=-1)]
    np.testing.assert_allclose(answer["probabilities"], native, atol=1e-5)
    assert answer["classes"] == card["class_names"]

    v2 = served.post(f"/v2/models/reverse/versions/{version}/infer", json={"inputs": [
        {"name": "input", "datatype": "FP32", "shape": list(raw.shape),
         "data": raw.ravel().tolist()}]}).json()
    assert v2["outputs"][0]["shape"] == [5, STEPS, 10]
    np.testing.assert_allclose(np.reshape(v2["outputs"][0]["data"], native.shape), native,
                               atol=1e-5)
    meta = served.get(f"/v2/models/reverse/versions/{version}").json()
    assert meta["outputs"][0]["shape"] == [-1, STEPS, 10]
