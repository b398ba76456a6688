"""`GET /catalog` renders the whole language; `POST /specs/validate` reports everything at once."""

import pytest

from ml.catalog import ACTIVATIONS, COMBINATIONS, INITIALIZERS, OBJECTIVES
from ml.spec import LAYER_TYPES, OPTIMIZER_TYPES
from tests.conftest import example


def test_catalog_lists_every_name_with_parameters_and_formulas(api):
    catalog = api.get("/catalog").json()
    assert [layer["type"] for layer in catalog["layers"]] == list(LAYER_TYPES)
    assert [a["name"] for a in catalog["activations"]] == list(ACTIVATIONS)
    assert all(a["formula"] and a["range"] for a in catalog["activations"])
    assert [c["name"] for c in catalog["combinations"]] == list(COMBINATIONS)
    assert [o["name"] for o in catalog["objectives"]] == list(OBJECTIVES)
    assert [o["type"] for o in catalog["optimizers"]] == list(OPTIMIZER_TYPES)
    assert [i["name"] for i in catalog["initializers"]] == list(INITIALIZERS)

    dense = {p["name"]: p for p in catalog["layers"][0]["parameters"]}
    assert dense["units"]["required"] and dense["units"]["schema"]["exclusiveMinimum"] == 0
    assert dense["activation"]["default"] == "identity"
    assert dense["combination"]["allowed"] == list(COMBINATIONS)
    assert dense["kernel_initializer"]["allowed"] == list(INITIALIZERS)
    conv = {p["name"]: p for p in next(layer for layer in catalog["layers"]
                                       if layer["type"] == "conv2d")["parameters"]}
    assert conv["padding"]["schema"]["enum"] == ["valid", "same"]
    adam = {p["name"]: p["default"] for p in catalog["optimizers"][4]["parameters"]}
    assert adam == {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}
    batchnorm = {p["name"]: p["default"] for p in next(
        layer for layer in catalog["layers"] if layer["type"] == "batchnorm")["parameters"]}
    assert batchnorm == {"momentum": 0.99, "epsilon": 0.001}


def test_validate_reports_shapes_and_parameter_counts(api):
    report = api.post("/specs/validate", json=example("cnn-digits.json")).json()
    assert report["valid"] and report["errors"] == []
    assert [layer["output_shape"] for layer in report["layers"]] == [
        [8, 8, 16], [8, 8, 16], [4, 4, 16], [4, 4, 16], [256], [64], [10]]
    assert [layer["params"] for layer in report["layers"]] == [160, 64, 0, 0, 0, 16448, 650]
    assert report["total_params"] == 17322
    # Per sample: a convolution's 160 weights at 64 places cost more than its parameters say.
    assert [layer["multiply_adds"] for layer in report["layers"]] == [
        160 * 64 + 1024, 64 * 64 + 1024, 256, 256, 256, 16448 + 64, 650 + 10]
    assert report["total_multiply_adds"] == 34324


def test_validate_needs_only_a_model(api):
    report = api.post("/specs/validate", json={"model": example("mlp-digits.json")["model"]})
    assert report.json()["valid"] and report.json()["total_params"] == 17226


@pytest.mark.parametrize(("layers", "input_shape", "field", "message"), [
    ([{"type": "conv2d", "filters": 2, "kernel_size": 3}], [64], "model.layers[0]",
     "conv2d expects input of shape [height, width, channels], received [64]; "
     "add a reshape layer"),
    ([{"type": "maxpool2d", "pool_size": 4}], [2, 2, 1], "model.layers[0].pool_size",
     "4×4 is larger than the input (2×2) at this layer"),
    ([{"type": "lstm", "units": 3}], [10], "model.layers[0]",
     "lstm expects input of shape [timesteps, features], received [10]; add a reshape layer"),
    ([{"type": "reshape", "target_shape": [3, 3]}], [10], "model.layers[0].target_shape",
     "[3, 3] holds 9 values, the input [10] holds 10"),
    ([{"type": "flatten"}, {"type": "embedding", "input_dim": 3, "output_dim": 2}], [4],
     "model.layers[1].type", "embedding must be the first layer: it reads integer ids from "
                             "the input"),
    ([{"type": "conv1d", "filters": 2, "kernel_size": 2, "strides": 2, "dilation": 2}], [9, 1],
     "model.layers[0].dilation", "2 cannot combine with strides 2: use strides 1 with a "
                                 "dilation"),
])
def test_impossible_shapes_are_placed_on_their_layer(api, layers, input_shape, field, message):
    body = {"model": {"name": "bad", "input": {"shape": input_shape},
                      "layers": [*layers, {"type": "flatten"},
                                 {"type": "dense", "units": 1}], "objective": "mse"}}
    report = api.post("/specs/validate", json=body).json()
    assert not report["valid"]
    assert {"field": field, "message": message} in [
        {k: e[k] for k in ("field", "message")} for e in report["errors"]]


def test_dense_on_images_is_fine(api):
    body = {"model": {"name": "ok", "input": {"shape": [4, 4, 1]}, "objective": "mse",
                      "layers": [{"type": "dense", "units": 3}, {"type": "flatten"},
                                 {"type": "dense", "units": 1}]}}
    assert api.post("/specs/validate", json=body).json()["valid"]


def test_validate_checks_the_dataset_and_names_both_sides(api):
    body = example("mlp-digits.json")
    body["dataset"] = "builtin:iris"
    errors = api.post("/specs/validate", json=body).json()["errors"]
    assert errors[0]["field"] == "model.input.shape"
    assert "does not fit the dataset's features [4]" in errors[0]["message"]
    body["model"]["objective"] = "mse"
    body["model"]["layers"][-1]["activation"] = "identity"
    errors = api.post("/specs/validate", json=body).json()["errors"]
    assert any(e["field"] == "model.objective" and "classification" in e["message"]
               for e in errors)


def test_every_error_at_once_through_jobs_too(api):
    body = example("cnn-digits.json")
    body["model"]["layers"][0]["activation"] = "rleu"
    body["model"]["layers"][2]["pool_size"] = 0
    body["training"]["optimizer"]["momentum"] = 2
    response = api.post("/jobs", json=body)
    assert response.status_code == 422
    fields = [d["field"] for d in response.json()["error"]["details"]]
    assert fields == ["model.layers[0].activation", "model.layers[2].pool_size",
                      "training.optimizer.momentum"]
    report = api.post("/specs/validate", json=body).json()
    assert [e["field"] for e in report["errors"]] == fields
