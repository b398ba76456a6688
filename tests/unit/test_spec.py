"""Spec parsing, readable errors with path and value, shapes and parameter counts."""

import pytest

from ml.datasets import load_builtin
from ml.errors import SpecError
from ml.spec import analyze, check_dataset_fit, parse_job_spec
from tests.conftest import example, tiny_job


def issues_of(body: dict) -> dict[str, str]:
    with pytest.raises(SpecError) as caught:
        parse_job_spec(body)
    return {issue.path: issue.message for issue in caught.value.issues}


def test_a_name_with_no_near_match_is_answered_with_the_valid_names():
    body = example("mlp-digits.json")
    body["model"]["layers"][1]["type"] = "zzzz"
    body["model"]["layers"][0]["activation"] = "qqqq"
    found = issues_of(body)
    layer = found["model.layers[1]"]
    assert layer.startswith("unknown type 'zzzz'; valid: ") and "dropout" in layer
    assert "conv2d" in layer and "batchnorm" in layer
    activation = found["model.layers[0].activation"]
    assert activation.startswith("unknown activation 'qqqq'; valid: ") and "relu" in activation


def test_mlp_example_parses_with_explicit_defaults():
    spec = parse_job_spec(example("mlp-digits.json"))
    assert spec.model.layers[0].kernel_initializer == "glorot_uniform"
    assert spec.training.optimizer.epsilon == 1e-7
    assert spec.model.from_logits


def test_every_error_is_reported_at_once_with_path_value_and_suggestion():
    body = example("mlp-digits.json")
    body["model"]["layers"][0]["units"] = -3
    body["model"]["layers"][1]["type"] = "dropot"
    body["model"]["layers"][2]["unitz"] = 3
    body["model"]["layers"][3]["activation"] = "sofmax"
    body["training"]["optimizer"]["type"] = "adma"
    found = issues_of(body)
    assert found["model.layers[0].units"] == "expected a positive integer, received -3"
    assert found["model.layers[1]"] == "unknown type 'dropot'; did you mean 'dropout'?"
    assert found["model.layers[2].unitz"] == "unknown parameter; did you mean 'units'?"
    assert found["model.layers[3].activation"] == (
        "unknown activation 'sofmax'; did you mean 'softmax'?")
    assert found["training.optimizer"] == "unknown type 'adma'; did you mean 'adam'?"


def test_missing_and_out_of_range_values():
    body = tiny_job()
    del body["model"]["input"]
    body["model"]["layers"][1]["rate"] = 1.5
    body["training"]["validation_split"] = 0
    found = issues_of(body)
    assert found["model.input"] == "is required"
    assert found["model.layers[1].rate"] == "expected a value less than 1.0, received 1.5"
    assert found["training.validation_split"] == "expected a value greater than 0.0, received 0"


def test_aliases_resolve_to_canonical_names():
    body = tiny_job()
    body["model"]["layers"][0]["activation"] = "sigmoid"
    assert parse_job_spec(body).model.layers[0].activation == "logistic"


def test_shapes_and_parameter_counts():
    analysis = analyze(parse_job_spec(example("mlp-digits.json")).model)
    assert [r.output_shape for r in analysis.layers] == [[128], [128], [64], [10]]
    assert [r.params for r in analysis.layers] == [64 * 128 + 128, 0, 128 * 64 + 64, 650]
    assert analysis.total_params == 17226


def test_multiply_adds_count_each_weight_once_per_position_or_time_step():
    body = tiny_job()
    body["model"]["input"]["shape"] = [6, 5]
    body["model"]["layers"] = [
        {"type": "embedding", "input_dim": 9, "output_dim": 2},  # [6, 5, 2]: 60 copied
        {"type": "conv2d", "filters": 4, "kernel_size": 3},  # 76 weights × 4·3 places + 48
        {"type": "reshape", "target_shape": [4, 12]},  # 48
        {"type": "lstm", "units": 2},  # 4·(12+2+1)·2 = 120 weights × 4 steps + 2
        {"type": "dense", "units": 3, "activation": "softmax"},  # 9 weights + 3
    ]
    analysis = analyze(parse_job_spec(body).model)
    assert [r.multiply_adds for r in analysis.layers] == [
        60, 76 * 12 + 48, 48, 120 * 4 + 2, 9 + 3]
    assert analysis.total_multiply_adds == sum(r.multiply_adds for r in analysis.layers)


def test_dense_acts_on_the_last_axis_and_flatten_makes_a_vector():
    body = tiny_job()
    body["model"]["input"]["shape"] = [2, 2]
    body["model"]["layers"][0]["units"] = 5
    analysis = analyze(parse_job_spec(body).model)
    assert [r.output_shape for r in analysis.layers] == [[2, 5], [2, 5], [10], [3]]


def test_an_output_that_is_neither_a_vector_nor_one_per_step_is_refused():
    body = tiny_job()
    body["model"]["input"]["shape"] = [2, 2, 1]
    del body["model"]["layers"][2]  # no flatten
    with pytest.raises(SpecError, match=r"one vector per sample or one per time step, "
                                        r"received shape \[2, 2, 3\]"):
        analyze(parse_job_spec(body).model)


def test_objective_must_fit_the_last_layer():
    body = tiny_job()
    body["model"]["layers"][-1]["activation"] = "relu"
    with pytest.raises(SpecError) as caught:
        analyze(parse_job_spec(body).model)
    assert caught.value.issues[0].path == "model.layers[3].activation"
    assert caught.value.issues[0].value == "relu"


def test_parameter_cap():
    with pytest.raises(SpecError, match="17226 parameters exceed the limit of 1000"):
        analyze(parse_job_spec(example("mlp-digits.json")).model, max_params=1000)


def test_dataset_fit_names_both_sides():
    spec = parse_job_spec(tiny_job())
    analysis = analyze(spec.model)
    check_dataset_fit(spec, load_builtin("builtin:iris").schema, analysis)
    with pytest.raises(SpecError) as caught:
        check_dataset_fit(spec, load_builtin("builtin:wine").schema, analysis)
    assert "does not fit the dataset's features [13]" in str(caught.value)
    body = tiny_job()
    body["model"]["layers"][-1]["units"] = 4
    spec = parse_job_spec(body)
    with pytest.raises(SpecError, match="4 outputs, but dataset 'builtin:iris' has 3 classes"):
        check_dataset_fit(spec, load_builtin("builtin:iris").schema, analyze(spec.model))


def test_a_split_that_leaves_too_few_samples_is_refused():
    body = tiny_job()
    body["training"]["validation_split"] = 0.99
    spec = parse_job_spec(body)
    with pytest.raises(SpecError) as caught:
        check_dataset_fit(spec, load_builtin("builtin:iris").schema, analyze(spec.model))
    issue = caught.value.issues[0]
    assert (issue.path, issue.value) == ("training.validation_split", 0.99)
    assert issue.message == ("0.99 leaves 1 training samples of 150 (after the 20% test split); "
                             "at least 3 needed")
