"""The encoder-decoder and attention layer types: shapes, parameters and multiply-adds as
`/specs/validate` reports them, each misuse refused naming its path and value, and a spec with
every layer type trained, exported and saved by both frameworks."""

import numpy as np
import pytest

from ml.errors import SpecError
from ml.spec import analyze, parse_job_spec
from tests.conftest import every_layer_job, tiny_job


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


def test_a_transformer_encoder_block_is_a_list_of_layers():
    analysis = _analysis([
        {"type": "embedding", "input_dim": 20, "output_dim": 8},  # [6, 8]
        {"type": "positional_embedding"},  # 6·8 positions
        {"type": "residual", "layers": [
            {"type": "layernorm"},
            # 4 heads of 2: query, key and value 8·4·2 + 4·2 each, output 4·2·8 + 8
            {"type": "multi_head_attention", "num_heads": 4, "causal": True},
            {"type": "dropout", "rate": 0.1}]},
        {"type": "residual", "layers": [{"type": "dense", "units": 16, "activation": "gelu"},
                                        {"type": "dense", "units": 8}]},
        {"type": "global_avgpool"},
    ], [6])
    assert [r.output_shape for r in analysis.layers] == [[6, 8]] * 4 + [[8]]
    attention = 3 * (8 * 4 * 2 + 4 * 2) + 4 * 2 * 8 + 8
    assert [r.params for r in analysis.layers] == [
        160, 48, 16 + attention, 8 * 16 + 16 + 16 * 8 + 8, 0]
    # layernorm, attention (projections a step, Q·Kᵀ and A·V), dropout, and the sum
    assert analysis.layers[2].multiply_adds == (
        4 * 48 + (attention * 6 + 2 * 6 * 6 * 4 * 2 + 48) + 48 + 48)


def test_time_distributed_applies_its_block_at_every_step():
    analysis = _analysis([
        {"type": "time_distributed", "layers": [
            {"type": "conv2d", "filters": 2, "kernel_size": 3},  # [3, 3, 2] a step
            {"type": "global_maxpool"}]},  # [2]
        {"type": "lstm", "units": 3},
    ], [4, 5, 5, 1])
    assert [r.output_shape for r in analysis.layers] == [[4, 2], [3]]
    assert analysis.layers[0].params == 3 * 3 * 2 + 2
    assert analysis.layers[0].multiply_adds == 4 * ((20 * 9 + 18) + 2)
    # the block's own report: one time step's shapes
    assert [(r.index, r.type, r.output_shape, r.params, r.multiply_adds)
            for r in analysis.layers[0].block] == [
        (0, "conv2d", [3, 3, 2], 20, 20 * 9 + 18), (1, "global_maxpool", [2], 0, 2)]
    assert analysis.layers[1].block is None


def test_time_distributed_refuses_a_layer_it_cannot_apply_at_each_step():
    issues = _issues([{"type": "time_distributed", "layers": [
        {"type": "dense", "units": 2}, {"type": "lstm", "units": 3}]}, {"type": "flatten"}],
        [4, 3])
    message, value = issues["model.layers[0].layers[1].type"]
    assert message.startswith("time_distributed cannot apply lstm at each time step; it "
                              "applies dense, conv1d, conv2d") and value == "lstm"
    issues = _issues([{"type": "time_distributed", "layer": {"type": "residual", "layers": [
        {"type": "dense", "units": 3}]}}, {"type": "flatten"}], [4, 3])
    assert issues["model.layers[0].layer.type"][1] == "residual"


def test_time_distributed_needs_a_time_axis_and_one_block():
    issues = _issues([{"type": "time_distributed", "layer": {"type": "dense", "units": 2}}],
                     [3])
    assert issues["model.layers[0]"] == (
        "time_distributed needs a time axis: input of shape [timesteps, ...], received [3]",
        [3])
    body = {"type": "time_distributed", "layer": {"type": "dense", "units": 2},
            "layers": [{"type": "flatten"}]}
    message, value = _issues([body, {"type": "flatten"}], [3, 2])["model.layers[0]"]
    assert message.startswith("give either layer or layers") and value == body
    assert _issues([{"type": "time_distributed"}], [3, 2])["model.layers[0]"][0] == (
        "give either layer or layers, received {'type': 'time_distributed'}")
    issues = _issues([{"type": "time_distributed", "layers": [
        {"type": "dense", "unitz": 2}, {"type": "lstmm"}]}], [3, 2])
    assert issues["model.layers[0].layers[0].unitz"] == (
        "unknown parameter; did you mean 'units'?", 2)
    assert issues["model.layers[0].layers[1]"] == (
        "unknown type 'lstmm'; did you mean 'lstm'?", {"type": "lstmm"})
    # an inner layer's own problem is named by its path inside the block
    issues = _issues([{"type": "time_distributed", "layers": [
        {"type": "conv1d", "filters": 2, "kernel_size": 5}]}, {"type": "flatten"}], [2, 3, 1])
    assert issues["model.layers[0].layers[0].kernel_size"] == (
        "5 is larger than the input (3) at this layer", 5)


def test_residual_refuses_a_block_that_changes_the_shape():
    issues = _issues([{"type": "residual", "layers": [
        {"type": "dense", "units": 6}, {"type": "dense", "units": 5}]}], [4])
    assert issues["model.layers[0].layers"] == (
        "the block's output [5] differs from its input [4]: they cannot be added",
        {"input": [4], "output": [5]})
    issues = _issues([{"type": "dense", "units": 4}, {"type": "residual", "layers": [
        {"type": "embedding", "input_dim": 3, "output_dim": 2}]}], [4])
    assert issues["model.layers[1].layers[0].type"][1] == "embedding"


def test_attention_refuses_heads_that_do_not_fit_and_a_mask_without_time_axis():
    issues = _issues([{"type": "multi_head_attention", "num_heads": 3}, {"type": "flatten"}],
                     [5, 8])
    assert issues["model.layers[0].num_heads"] == (
        "3 heads do not divide the input's 8 features: give key_dim, or a number of heads "
        "that divides them", 3)
    # with key_dim given, any number of heads fits (the projections make the sizes)
    assert _analysis([{"type": "multi_head_attention", "num_heads": 3, "key_dim": 4},
                      {"type": "flatten"}], [5, 8]).output_shape == [40]
    issues = _issues([{"type": "multi_head_attention", "num_heads": 2, "causal": True}], [8])
    assert issues["model.layers[0].causal"] == (
        "a causal mask needs a time axis: input of shape [timesteps, features], received [8]",
        True)
    issues = _issues([{"type": "positional_embedding"}, {"type": "flatten"}], [2, 2, 2])
    assert issues["model.layers[0]"][1] == [2, 2, 2]


def test_a_bidirectional_layer_sums_or_concatenates_its_directions():
    analysis = _analysis([
        {"type": "gru", "units": 4, "bidirectional": True, "merge_mode": "sum",
         "return_sequences": True},
        {"type": "lstm", "units": 3, "bidirectional": True}], [5, 2])
    assert [r.output_shape for r in analysis.layers] == [[5, 4], [6]]
    issues = _issues([{"type": "lstm", "units": 3, "merge_mode": "sum"}], [5, 2])
    assert issues["model.layers[0].merge_mode"] == (
        "merge_mode sum joins the two directions of a bidirectional layer; set bidirectional",
        "sum")


def test_attention_dropout_acts_only_in_training():
    """Keras computes attention with dropout by its own path rather than its fused one: the
    same outputs as torch at inference all the same."""
    import torch

    from tests.unit.test_backends import _built, _model, _random_weights

    model = _model([{"type": "multi_head_attention", "num_heads": 2, "dropout": 0.5}], [6, 4])
    rng = np.random.default_rng(0)
    weights = _random_weights(model, rng)
    x = rng.normal(size=(8, 6, 4)).astype(np.float32)
    torch_backend, torch_model = _built("pytorch", model, weights)
    keras_backend, keras_model = _built("tensorflow", model, weights)
    inference = torch_backend.predict(torch_model, x)
    np.testing.assert_allclose(keras_backend.predict(keras_model, x), inference, rtol=1e-4,
                               atol=1e-4)
    torch_model.train()
    training = {"torch": torch_model(torch.from_numpy(x)).detach().numpy(),
                "keras": np.asarray(keras_model.model(x, training=True))}
    for framework, out in training.items():
        assert not np.allclose(out, inference, atol=1e-3), framework


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_a_spec_with_every_layer_type_trains_exports_and_saves(framework, tmp_path):
    """Two batches of the every-layer spec; then the ONNX export and the framework's own file
    compute what the trained model does."""
    import onnx

    from ml import onnx_export
    from ml.backends import get_backend
    from ml.datasets import load_builtin
    from ml.serving import Predictor
    from ml.training import prepare

    spec = parse_job_spec(every_layer_job(framework))
    data = prepare(spec, load_builtin(spec.dataset))
    backend = get_backend(framework)
    hooks = StopAfterBatches(2)
    native, _ = backend.fit(spec, data, hooks, "cpu")
    assert hooks.checks >= 2
    weights = backend.get_weights(native)
    assert set(weights) == {f"layers.{i}.{name}" for i, layer in enumerate(spec.model.layers)
                            for name in layer.weights(_input_of(spec, i))}
    x = data.x_test[:5]
    outputs = backend.predict(native, x)
    assert outputs.shape == (5, 10) and np.allclose(outputs.sum(axis=1), 1.0, atol=1e-5)
    onnx.save(onnx_export.export(spec.model, weights, None), str(tmp_path / "model.onnx"))
    np.testing.assert_allclose(Predictor.load(tmp_path / "model.onnx").predict(x), outputs,
                               rtol=1e-4, atol=1e-5)
    saved = backend.save_native(native, tmp_path, data.preprocessing)
    if framework == "tensorflow":  # the .keras file loads in safe mode: no code in it
        keras = backend.keras
        loaded = keras.saving.load_model(tmp_path / saved[0], safe_mode=True)
        raw = x * data.preprocessing.scale + data.preprocessing.shift  # it scales them itself
        np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(raw, training=False)),
                                   outputs, rtol=1e-5, atol=1e-5)


class StopAfterBatches:
    """Asks to stop once `batches` training steps have run."""

    def __init__(self, batches: int):
        self.batches, self.checks = batches, 0

    def on_epoch_end(self, metrics) -> None:
        pass

    def should_stop(self) -> bool:
        self.checks += 1
        return self.checks >= self.batches


def _input_of(spec, index: int) -> tuple[int, ...]:
    shape = tuple(spec.model.input.shape)
    for layer in spec.model.layers[:index]:
        shape = layer.output_shape(shape)
    return shape
