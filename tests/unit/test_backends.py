"""Every spec name has a builder in both backends and the ONNX exporter; parity of all three."""

import numpy as np
import onnx
import pytest

from ml import onnx_export
from ml.backends import get_backend
from ml.catalog import ACTIVATIONS, COMBINATIONS, INITIALIZERS, OBJECTIVES
from ml.datasets import Preprocessing
from ml.serving import Predictor
from ml.spec import LAYER_TYPES, OPTIMIZER_TYPES, ModelSpec, analyze

FRAMEWORKS = ("pytorch", "tensorflow")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_every_name_has_a_builder(framework):
    backend = get_backend(framework)
    assert set(backend.LAYER_BUILDERS) == set(LAYER_TYPES)
    assert set(backend.ACTIVATIONS) == set(ACTIVATIONS)
    assert set(backend.COMBINATIONS) == set(COMBINATIONS)
    assert set(backend.LOSSES) == set(OBJECTIVES)
    assert set(backend.OPTIMIZERS) == set(OPTIMIZER_TYPES)


def test_every_name_has_an_onnx_builder_and_torch_initializer():
    assert set(onnx_export.LAYER_BUILDERS) == set(LAYER_TYPES)
    assert set(onnx_export.ACTIVATIONS) == set(ACTIVATIONS)
    assert set(onnx_export.COMBINATIONS) == set(COMBINATIONS)
    assert set(get_backend("pytorch").INITIALIZERS) == set(INITIALIZERS)


def _model(layers: list[dict], input_shape: list[int], objective: str = "mse") -> ModelSpec:
    return ModelSpec.model_validate({"name": "parity", "input": {"shape": input_shape},
                                     "layers": layers, "objective": objective})


def _random_weights(model: ModelSpec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    weights, shape = {}, tuple(model.input.shape)
    for index, layer in enumerate(model.layers):
        for name, weight in layer.weights(shape).items():
            value = rng.normal(size=weight.shape).astype(np.float32)
            if name.rsplit(".", 1)[-1] in ("moving_variance", "widths", "altitudes"):
                value = np.abs(value) + 0.5  # a variance is positive; keep log|a| tame
            weights[f"layers.{index}.{name}"] = value
        shape = layer.output_shape(shape)
    return weights


def _dense(**kw):
    return {"type": "dense", "units": 5, **kw}


CASES: dict[str, tuple[list[dict], list[int]]] = {
    **{f"activation-{name}": ([_dense(activation=name)], [7]) for name in ACTIVATIONS},
    **{f"combination-{name}": ([_dense(combination=name, activation="tanh")], [4])
       for name in COMBINATIONS},
    "activation-layer": ([{"type": "activation", "function": "elliott"}], [3]),
    "dense-no-bias": ([_dense(use_bias=False)], [3]),
    "dense-on-matrix": ([_dense(activation="tanh"), {"type": "flatten"}], [2, 4]),
    "dropout": ([_dense(activation="relu"), {"type": "dropout", "rate": 0.5}], [3]),
    "flatten-reshape": ([{"type": "flatten"}, {"type": "reshape", "target_shape": [4, 3]},
                         {"type": "flatten"}], [3, 2, 2]),
    "conv1d": ([{"type": "conv1d", "filters": 4, "kernel_size": 3, "activation": "relu"},
                {"type": "flatten"}], [9, 2]),
    "conv1d-same-strided-dilated": ([{"type": "conv1d", "filters": 3, "kernel_size": 3,
                                      "padding": "same", "dilation": 2}, {"type": "flatten"}],
                                    [8, 2]),
    "conv2d": ([{"type": "conv2d", "filters": 4, "kernel_size": [3, 2]},
                {"type": "flatten"}], [6, 5, 2]),
    "conv2d-same": ([{"type": "conv2d", "filters": 3, "kernel_size": 3, "padding": "same"},
                     {"type": "flatten"}], [5, 4, 2]),
    "conv2d-same-even-window": ([{"type": "conv2d", "filters": 2, "kernel_size": 2,
                                  "padding": "same"}, {"type": "flatten"}], [5, 4, 2]),
    "conv2d-same-strided": ([{"type": "conv2d", "filters": 3, "kernel_size": 3, "strides": 2,
                              "padding": "same", "activation": "selu"}, {"type": "flatten"}],
                            [7, 6, 1]),
    **{f"{pool}-{padding}": ([{"type": pool, "pool_size": 2, "strides": 2, "padding": padding},
                              {"type": "flatten"}],
                             [7, 3] if pool.endswith("1d") else [5, 7, 2])
       for pool in ("maxpool1d", "avgpool1d", "maxpool2d", "avgpool2d")
       for padding in ("valid", "same")},
    "maxpool2d-overlapping": ([{"type": "maxpool2d", "pool_size": 3, "strides": 1},
                               {"type": "flatten"}], [5, 5, 1]),
    "global_avgpool-1d": ([{"type": "global_avgpool"}], [6, 3]),
    "global_maxpool-2d": ([{"type": "global_maxpool"}], [4, 5, 3]),
    "batchnorm-dense": ([_dense(), {"type": "batchnorm", "momentum": 0.9}], [3]),
    "batchnorm-image": ([{"type": "batchnorm", "epsilon": 0.01}, {"type": "flatten"}],
                        [3, 3, 2]),
    **{f"{rnn}{'-bidirectional' if bi else ''}{'-sequences' if seq else ''}": (
        [{"type": rnn, "units": 3, "bidirectional": bi, "return_sequences": seq}]
        + ([{"type": "flatten"}] if seq else []), [5, 2])
       for rnn in ("simple_rnn", "lstm", "gru") for bi in (False, True) for seq in (False, True)},
    **{f"{rnn}-bidirectional-sum{'-sequences' if seq else ''}": (
        [{"type": rnn, "units": 3, "bidirectional": True, "merge_mode": "sum",
          "return_sequences": seq}] + ([{"type": "flatten"}] if seq else []), [5, 2])
       for rnn in ("lstm", "gru") for seq in (False, True)},
    "embedding": ([{"type": "embedding", "input_dim": 10, "output_dim": 3},
                   {"type": "flatten"}], [4]),
    "repeat_vector-lstm": ([{"type": "repeat_vector", "n": 4},
                            {"type": "lstm", "units": 3, "return_sequences": True},
                            {"type": "flatten"}], [2]),
    "layernorm-sequence": ([{"type": "layernorm", "epsilon": 0.01}, {"type": "flatten"}],
                           [4, 5]),
    "layernorm-vector": ([_dense(), {"type": "layernorm"}], [3]),
    "upsample2d": ([{"type": "upsample2d", "size": [2, 3]}, {"type": "flatten"}], [3, 2, 2]),
    **{f"conv2d_transpose-{padding}-{kernel}-{strides}": (
        [{"type": "conv2d_transpose", "filters": 3, "kernel_size": kernel, "strides": strides,
          "padding": padding, "activation": "tanh"}, {"type": "flatten"}], [4, 3, 2])
       for padding in ("valid", "same")
       for kernel, strides in ((3, 1), (3, 2), (2, 2), ([2, 3], [3, 1]), (4, 2))},
    # The dense's softmax is time_distributed's own activation, applied after the block.
    "time_distributed-dense": ([{"type": "time_distributed", "layer": _dense(
        units=4, activation="softmax")}, {"type": "flatten"}], [5, 3]),
    "time_distributed-cnn-lstm": ([{"type": "time_distributed", "layers": [
        {"type": "conv2d", "filters": 3, "kernel_size": 3, "activation": "relu"},
        {"type": "batchnorm", "momentum": 0.8}, {"type": "maxpool2d"}, {"type": "flatten"},
        _dense(units=4, activation="tanh")]}, {"type": "lstm", "units": 3}], [4, 6, 6, 1]),
    "time_distributed-dropout": ([{"type": "time_distributed", "layers": [
        _dense(units=6, activation="relu"), {"type": "dropout", "rate": 0.5}]},
        {"type": "flatten"}], [4, 3]),
    "time_distributed-global-pool": ([{"type": "time_distributed", "layers": [
        {"type": "conv1d", "filters": 2, "kernel_size": 2}, {"type": "global_maxpool"}]},
        {"type": "flatten"}], [3, 5, 2]),
    "positional_embedding": ([{"type": "embedding", "input_dim": 10, "output_dim": 3},
                              {"type": "positional_embedding"}, {"type": "flatten"}], [4]),
    "multi_head_attention-causal-key_dim": ([{
        "type": "multi_head_attention", "num_heads": 3, "key_dim": 2, "causal": True,
        "use_bias": False}, {"type": "flatten"}], [4, 5]),
    "residual-dense": ([{"type": "residual", "layers": [
        _dense(units=6, activation="relu"), _dense(units=4, activation="tanh")]}], [4]),
    "residual-lstm-conv1d": ([{"type": "residual", "layers": [
        {"type": "gru", "units": 2, "return_sequences": True, "bidirectional": True},
        {"type": "conv1d", "filters": 3, "kernel_size": 3, "padding": "same"}]},
        {"type": "flatten"}], [5, 3]),
    "residual-time_distributed": ([{"type": "residual", "layers": [
        {"type": "time_distributed", "layer": _dense(units=3, activation="elliott")}]},
        {"type": "flatten"}], [4, 3]),
    "transformer-encoder": ([
        {"type": "positional_embedding"},
        {"type": "residual", "layers": [{"type": "layernorm"}, {
            "type": "multi_head_attention", "num_heads": 2}]},
        {"type": "residual", "layers": [{"type": "layernorm"}, _dense(units=8, activation="gelu"),
                                        _dense(units=6)]},
        {"type": "global_avgpool"}], [5, 6]),
}


def _inputs(model: ModelSpec, rng: np.random.Generator, n: int = 9) -> np.ndarray:
    shape = (n, *model.input.shape)
    if model.layers[0].type == "embedding":
        return rng.integers(0, model.layers[0].input_dim, size=shape).astype(np.float32)
    return rng.normal(size=shape).astype(np.float32)


def _built(framework: str, model: ModelSpec, weights: dict[str, np.ndarray]):
    backend = get_backend(framework)
    native = backend.build(model)
    backend.set_weights(native, weights)
    return backend, native


@pytest.mark.parametrize("case", list(CASES))
def test_same_weights_give_the_same_outputs_in_keras_torch_and_onnx(case, tmp_path):
    layers, input_shape = CASES[case]
    model = _model(layers, input_shape)
    rng = np.random.default_rng(0)
    weights = _random_weights(model, rng)
    x = _inputs(model, rng)
    outputs = {}
    for framework in FRAMEWORKS:
        backend, native = _built(framework, model, weights)
        # The canonical layout round-trips through each framework unchanged.
        assert {k: v.tolist() for k, v in backend.get_weights(native).items()} == \
            {k: v.tolist() for k, v in weights.items()}
        outputs[framework] = backend.predict(native, x)
    onnx.save(onnx_export.export(model, weights, None), str(tmp_path / "model.onnx"))
    outputs["onnx"] = Predictor.load(tmp_path / "model.onnx").predict(x)
    assert outputs["pytorch"].shape == (9, *analyze(model).output_shape)
    tolerance = {"rtol": 1e-4, "atol": 1e-4}
    np.testing.assert_allclose(outputs["pytorch"], outputs["tensorflow"], **tolerance)
    np.testing.assert_allclose(outputs["onnx"], outputs["pytorch"], **tolerance)


@pytest.mark.parametrize("shape", [[3], [3, 2], [4, 3, 2]])
def test_batchnorm_training_mode_uses_batch_statistics_and_moves_the_same_way(shape):
    import torch

    model = _model([{"type": "batchnorm", "momentum": 0.8}], shape)
    rng = np.random.default_rng(1)
    weights = _random_weights(model, rng)
    x = rng.normal(2.0, 3.0, size=(16, *shape)).astype(np.float32)
    _, torch_model = _built("pytorch", model, weights)
    keras_backend, keras_model = _built("tensorflow", model, weights)
    torch_model.train()
    torch_out = torch_model(torch.from_numpy(x)).detach().numpy()
    keras_out = np.asarray(keras_model.model(x, training=True))
    np.testing.assert_allclose(torch_out, keras_out, rtol=1e-4, atol=1e-4)
    moved_torch = get_backend("pytorch").get_weights(torch_model)
    moved_keras = keras_backend.get_weights(keras_model)
    for name in ("layers.0.moving_mean", "layers.0.moving_variance"):
        assert not np.allclose(moved_torch[name], weights[name])
        np.testing.assert_allclose(moved_torch[name], moved_keras[name], rtol=1e-5, atol=1e-5)


def test_dropout_is_active_only_in_training_mode():
    import torch

    model = _model([{"type": "dropout", "rate": 0.5}], [1000])
    _, torch_model = _built("pytorch", model, {})
    x = np.ones((1, 1000), np.float32)
    torch_model.train()
    dropped = torch_model(torch.from_numpy(x)).numpy()
    assert 300 < int((dropped == 0).sum()) < 700 and set(np.unique(dropped)) == {0.0, 2.0}
    keras_backend, keras_model = _built("tensorflow", model, {})
    dropped = np.asarray(keras_model.model(x, training=True))
    assert 300 < int((dropped == 0).sum()) < 700
    assert np.all(keras_backend.predict(keras_model, x) == 1.0)


@pytest.mark.parametrize("case", ["lstm", "gru-bidirectional", "conv2d", "batchnorm-image",
                                  "combination-xradial", "embedding"])
def test_torch_trains_exactly_the_canonical_parameters(case):
    layers, input_shape = CASES[case]
    model = _model(layers, input_shape)
    _, native = _built("pytorch", model, _random_weights(model, np.random.default_rng(0)))
    trainable = sum(p.numel() for p in native.parameters() if p.requires_grad)
    moving = sum(np.prod(w.shape) for layer in model.layers
                 for name, w in layer.weights(tuple(input_shape)).items()
                 if name.startswith("moving_"))
    assert trainable == analyze(model).total_params - moving


def test_onnx_export_folds_preprocessing_in(tmp_path):
    model = _model([_dense(units=2)], [3])
    weights = _random_weights(model, np.random.default_rng(1))
    scaling = Preprocessing("standardize", np.array([1, 2, 3], np.float32),
                            np.array([2, 4, 8], np.float32))
    onnx.save(onnx_export.export(model, weights, scaling), str(tmp_path / "m.onnx"))
    raw = np.random.default_rng(2).normal(size=(4, 3)).astype(np.float32)
    backend, native = _built("pytorch", model, weights)
    np.testing.assert_allclose(Predictor.load(tmp_path / "m.onnx").predict(raw),
                               backend.predict(native, scaling.apply(raw)), atol=1e-5)
