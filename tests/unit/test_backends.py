"""Every spec name has a builder in both backends and the ONNX exporter; parity of all three."""

import numpy as np
import pytest

from ml import onnx_export
from ml.backends import get_backend
from ml.catalog import ACTIVATIONS, OBJECTIVES
from ml.datasets import Preprocessing
from ml.serving import Predictor
from ml.spec import LAYER_TYPES, OPTIMIZER_TYPES, ModelSpec, analyze

FRAMEWORKS = ("pytorch", "tensorflow")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_every_name_has_a_builder(framework):
    backend = get_backend(framework)
    assert set(backend.LAYER_BUILDERS) == set(LAYER_TYPES)
    assert set(backend.ACTIVATIONS) == set(ACTIVATIONS)
    assert set(backend.LOSSES) == set(OBJECTIVES)
    assert set(backend.OPTIMIZERS) == set(OPTIMIZER_TYPES)


def test_every_name_has_an_onnx_builder():
    assert set(onnx_export.LAYER_BUILDERS) == set(LAYER_TYPES)
    assert set(onnx_export.ACTIVATIONS) == set(ACTIVATIONS)


def _model(layers: list[dict], input_shape: list[int], objective: str = "mse") -> ModelSpec:
    return ModelSpec.model_validate({"name": "parity", "input": {"shape": input_shape},
                                     "layers": layers, "objective": objective})


def _random_weights(model: ModelSpec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    weights, shape = {}, tuple(model.input.shape)
    for index, layer in enumerate(model.layers):
        for name, weight_shape in layer.weight_shapes(shape).items():
            weights[f"layers.{index}.{name}"] = rng.normal(size=weight_shape).astype(np.float32)
        shape = layer.output_shape(shape)
    return weights


CASES = {
    **{f"dense-{name}": ([{"type": "dense", "units": 5, "activation": name}], [7])
       for name in ACTIVATIONS},
    "dense-no-bias": ([{"type": "dense", "units": 4, "use_bias": False}], [3]),
    "dense-on-matrix": ([{"type": "dense", "units": 3, "activation": "tanh"},
                         {"type": "flatten"}], [2, 4]),
    "dropout": ([{"type": "dense", "units": 6, "activation": "relu"},
                 {"type": "dropout", "rate": 0.5}, {"type": "dense", "units": 2}], [3]),
    "flatten": ([{"type": "flatten"}, {"type": "dense", "units": 2}], [3, 2, 2]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_same_weights_give_the_same_outputs_in_keras_torch_and_onnx(case, tmp_path):
    layers, input_shape = CASES[case]
    model = _model(layers, input_shape)
    rng = np.random.default_rng(0)
    weights = _random_weights(model, rng)
    x = rng.normal(size=(9, *input_shape)).astype(np.float32)
    outputs = {}
    for framework in FRAMEWORKS:
        backend = get_backend(framework)
        native = backend.build(model)
        backend.set_weights(native, weights)
        # The canonical layout round-trips through each framework unchanged.
        assert {k: v.tolist() for k, v in backend.get_weights(native).items()} == \
            {k: v.tolist() for k, v in weights.items()}
        outputs[framework] = backend.predict(native, x)
    path = tmp_path / "model.onnx"
    import onnx

    onnx.save(onnx_export.export(model, weights, None), str(path))
    outputs["onnx"] = Predictor.load(path).predict(x)
    assert outputs["pytorch"].shape == (9, *analyze(model).output_shape)
    np.testing.assert_allclose(outputs["pytorch"], outputs["tensorflow"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outputs["onnx"], outputs["pytorch"], rtol=1e-5, atol=1e-5)


def test_onnx_export_folds_preprocessing_in(tmp_path):
    model = _model([{"type": "dense", "units": 2}], [3])
    weights = _random_weights(model, np.random.default_rng(1))
    scaling = Preprocessing("standardize", np.array([1, 2, 3], np.float32),
                            np.array([2, 4, 8], np.float32))
    import onnx

    onnx.save(onnx_export.export(model, weights, scaling), str(tmp_path / "m.onnx"))
    raw = np.random.default_rng(2).normal(size=(4, 3)).astype(np.float32)
    backend = get_backend("pytorch")
    native = backend.build(model)
    backend.set_weights(native, weights)
    np.testing.assert_allclose(Predictor.load(tmp_path / "m.onnx").predict(raw),
                               backend.predict(native, scaling.apply(raw)), atol=1e-5)
