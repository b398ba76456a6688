"""The encoder-decoder and attention layer types in the spec: shapes, parameters and
multiply-adds as `/specs/validate` reports them, and each misuse refused naming its path and
value."""

import pytest

from ml.errors import SpecError
from ml.spec import analyze, parse_job_spec
from tests.conftest import tiny_job


def _analysis(layers: list[dict], input_shape: list[int]):
    body = tiny_job()
    body["model"]["input"]["shape"] = input_shape
    body["model"]["layers"] = layers
    body["model"]["objective"] = "mse"
    return analyze(parse_job_spec(body).model)


def _issues(layers: list[dict], input_shape: list[int]) -> dict[str, tuple[str, object]]:
    with pytest.raises(SpecError) as caught:
        _analysis(layers, input_shape)
    return {issue.path: (issue.message, issue.value) for issue in caught.value.issues}


def test_upsampling_layers_report_shapes_parameters_and_multiply_adds():
    analysis = _analysis([
        {"type": "upsample2d", "size": [2, 3]},  # [4, 6, 2]: 48 values
        # kernel 3·3·4·2 = 72 weights × 4·6 input places + 4 biases; [9, 13, 4] out (valid)
        {"type": "conv2d_transpose", "filters": 4, "kernel_size": 3, "strides": 2},
        {"type": "conv2d_transpose", "filters": 1, "kernel_size": 2, "strides": 2,
         "padding": "same"},  # [18, 26, 1]
        {"type": "flatten"},
    ], [2, 2, 2])
    assert [r.output_shape for r in analysis.layers] == [
        [4, 6, 2], [9, 13, 4], [18, 26, 1], [18 * 26]]
    assert [r.params for r in analysis.layers] == [0, 72 + 4, 2 * 2 * 4 + 1, 0]
    assert analysis.layers[0].multiply_adds == 48
    assert analysis.layers[1].multiply_adds == 72 * 24 + 9 * 13 * 4


def test_repeat_vector_and_layernorm_report_shapes_and_parameters():
    analysis = _analysis([
        {"type": "repeat_vector", "n": 5},  # [5, 3]
        {"type": "layernorm"},  # γ and β: 6 parameters
        {"type": "lstm", "units": 2},
    ], [3])
    assert [r.output_shape for r in analysis.layers] == [[5, 3], [5, 3], [2]]
    assert [r.params for r in analysis.layers] == [0, 6, 4 * (3 + 2 + 1) * 2]
    assert analysis.layers[1].multiply_adds == 4 * 15


def test_repeat_vector_needs_a_vector():
    issues = _issues([{"type": "repeat_vector", "n": 2}, {"type": "flatten"}], [3, 4])
    assert issues["model.layers[0]"] == (
        "repeat_vector expects one vector per sample, received [3, 4]; add a flatten layer or "
        "a recurrent layer without return_sequences", [3, 4])


def test_conv2d_transpose_and_upsample2d_need_images():
    issues = _issues([{"type": "conv2d_transpose", "filters": 2, "kernel_size": 3}], [6, 2])
    assert issues["model.layers[0]"][0].startswith(
        "conv2d_transpose expects input of shape [height, width, channels], received [6, 2]")
    issues = _issues([{"type": "upsample2d"}, {"type": "flatten"}], [9])
    assert issues["model.layers[0]"] == (
        "upsample2d expects input of shape [height, width, channels], received [9]; add a "
        "reshape layer", [9])
