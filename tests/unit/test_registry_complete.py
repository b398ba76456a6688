"""Every declared layer type, activation, combination, initializer and objective has a builder
in each backend that needs one (`ml.registry`) and a parity case that runs it: Keras = torch
= ONNX in inference (`tests/unit/test_backends.py`), Keras = torch in training mode, losses
and initial distributions. Each check is derived from the declarations, so a new type without
a builder or a case fails a test that names it."""

import importlib
from typing import ClassVar, Literal

import numpy as np
import pytest

from ml import catalog
from ml import spec as S
from ml.registry import BACKENDS, KERAS, TORCH, MissingBuilder
from tests.unit.test_backends import CASES, _built, _inputs, _model, _random_weights


@pytest.fixture(scope="module", autouse=True)
def registered():
    """Run every backend's registrations (torch first, as a worker loads them)."""
    for backend in BACKENDS:
        importlib.import_module(backend.module)


TABLES = [(backend, concept) for backend in BACKENDS for concept in backend.concepts()]


@pytest.mark.parametrize(("backend", "concept"), TABLES,
                         ids=[f"{b.name}-{c}" for b, c in TABLES])
def test_every_declared_name_has_a_builder_and_every_builder_a_declared_name(backend, concept):
    table = backend.concepts()[concept]
    assert table.missing() == []
    assert table.undeclared() == []


class Conv3D(S.Conv):
    type: Literal["conv3d"]
    rank: ClassVar[int] = 3


class Mystery(S.Layer):
    type: Literal["mystery"]


@pytest.mark.parametrize("backend", BACKENDS, ids=[b.name for b in BACKENDS])
def test_a_new_layer_type_without_its_builder_fails_by_name(backend, monkeypatch):
    monkeypatch.setitem(S.LAYER_TYPES, "conv3d", Conv3D)
    monkeypatch.setitem(S.LAYER_TYPES, "mystery", Mystery)
    assert backend.layers.missing() == [
        f"the {backend.name} backend builds Conv at rank 1, 2, not conv3d at rank 3",
        f"the {backend.name} backend has no builder for layer type 'mystery' (Mystery)"]
    # A conv3d layer is refused rather than built as a convolution of another rank.
    with pytest.raises(MissingBuilder, match="not conv3d at rank 3"):
        backend.layers[Conv3D(type="conv3d", filters=2, kernel_size=3)]


def test_a_missing_name_is_refused_naming_backend_and_name():
    with pytest.raises(MissingBuilder, match="^the torch backend has no activation 'nope'$"):
        TORCH.activations["nope"]
    with pytest.raises(MissingBuilder, match="^'conv3d' is not a layer type$"):
        KERAS.layers["conv3d"]


def test_a_builder_is_registered_once():
    with pytest.raises(ValueError, match="registers activation 'gauss' twice"):
        TORCH.activations.register("gauss", abs)
    with pytest.raises(ValueError, match="must name the ranks it builds"):
        TORCH.layers.register(S.Spatial, lambda layer, in_shape: None)


# --- parity cases --------------------------------------------------------------------------


def _flat(layers: list[S.Layer]) -> list[S.Layer]:
    """The layers, each followed by those of its block if it has one."""
    return [inner for layer in layers for inner in (
        [layer, *_flat([m.layer for m in layer.members()])] if isinstance(layer, S.Nested)
        else [layer])]


def _covered() -> dict[str, set[str]]:
    """What the parity cases of `test_backends.py` run, by concept."""
    covered: dict[str, set[str]] = {"layer type": set(), "activation": set(),
                                    "combination": set()}
    for layers, input_shape in CASES.values():
        for layer in _flat(_model(layers, input_shape).layers):
            covered["layer type"].add(layer.type)
            covered["activation"].add(layer.output_activation or "identity")
            covered["combination"].add(getattr(layer, "combination", "linear"))
    return covered


DECLARED = ([("layer type", name) for name in S.LAYER_TYPES]
            + [("activation", name) for name in catalog.ACTIVATIONS]
            + [("combination", name) for name in catalog.COMBINATIONS])


@pytest.mark.parametrize(("concept", "name"), DECLARED, ids=[f"{c}-{n}" for c, n in DECLARED])
def test_every_layer_type_activation_and_combination_has_a_parity_case(concept, name):
    assert name in _covered()[concept], \
        f"{concept} '{name}' has no parity case in CASES (tests/unit/test_backends.py)"


@pytest.mark.parametrize("case", list(CASES))
def test_training_mode_gives_the_same_outputs_and_moving_statistics_in_keras_and_torch(case):
    import keras
    import torch

    layers, input_shape = CASES[case]
    model = _model(layers, input_shape)
    rng = np.random.default_rng(0)
    weights = _random_weights(model, rng)
    x = _inputs(model, rng)
    torch_backend, torch_model = _built("pytorch", model, weights)
    keras_backend, keras_model = _built("tensorflow", model, weights)
    inference = torch_backend.predict(torch_model, x)
    torch_model.train()
    outputs = {"torch": torch_model(torch.from_numpy(x)).detach().numpy(),
               "keras": keras.ops.convert_to_numpy(keras_model.model(x, training=True))}
    rates = [layer.rate for layer in _flat(model.layers) if isinstance(layer, S.Dropout)]
    if rates:  # random masks: each value is dropped, or kept and scaled by 1 / (1 − rate)
        kept = inference / np.prod([1 - rate for rate in rates])
        for framework, out in outputs.items():
            dropped = np.isclose(out, 0.0, atol=1e-6)
            assert dropped.any() and not dropped.all(), framework
            np.testing.assert_allclose(out[~dropped], kept[~dropped], rtol=1e-4, atol=1e-4)
    else:
        np.testing.assert_allclose(outputs["torch"], outputs["keras"], rtol=1e-4, atol=1e-4)
    moved_torch = torch_backend.get_weights(torch_model)
    for name, value in keras_backend.get_weights(keras_model).items():
        np.testing.assert_allclose(moved_torch[name], value, rtol=1e-4, atol=1e-5, err_msg=name)


# Outputs (logits where the loss takes them) and targets, as the training loop feeds them.
OBJECTIVE_CASES = {
    "categorical_crossentropy": lambda rng: (rng.normal(size=(8, 4)),
                                             rng.integers(0, 4, size=8)),
    "binary_crossentropy": lambda rng: (rng.normal(size=(8, 1)),
                                        rng.integers(0, 2, size=(8, 1)).astype(np.float32)),
    "mse": lambda rng: (rng.normal(size=(8, 3)), rng.normal(size=(8, 3))),
    "mae": lambda rng: (rng.normal(size=(8, 3)), rng.normal(size=(8, 3))),
    # errors on both sides of Huber's δ = 1
    "huber": lambda rng: (rng.normal(0.0, 2.0, size=(8, 3)), rng.normal(size=(8, 3))),
}


@pytest.mark.parametrize("objective", list(catalog.OBJECTIVES))
def test_every_objective_gives_the_same_loss_in_keras_and_torch(objective):
    import keras
    import torch

    assert objective in OBJECTIVE_CASES, f"objective '{objective}' has no parity case"
    outputs, targets = OBJECTIVE_CASES[objective](np.random.default_rng(3))
    outputs = outputs.astype(np.float32)
    keras_loss = keras.ops.convert_to_numpy(KERAS.objectives[objective]()(targets, outputs))
    torch_loss = TORCH.objectives[objective](torch.from_numpy(outputs), torch.from_numpy(targets))
    np.testing.assert_allclose(float(torch_loss), float(keras_loss), rtol=1e-5)


@pytest.mark.parametrize("shape", [(96, 128), (5, 5, 16, 32)])
@pytest.mark.parametrize("initializer", list(catalog.INITIALIZERS))
def test_every_initializer_draws_from_the_same_distribution_in_keras_and_torch(initializer,
                                                                               shape):
    import keras
    import torch

    from ml.backends.torch_layers import initialize

    torch.manual_seed(0)  # the same draws every run
    keras.utils.set_random_seed(0)
    draws = {
        "keras": keras.ops.convert_to_numpy(
            keras.initializers.get(KERAS.initializers[initializer])(shape, dtype="float32")),
        "torch": initialize(S.Weight(shape, initializer)).numpy(),
    }
    # With some 12,000 values these statistics move by a few hundredths of the deviation
    # between draws; another scale (a wrong fan) or grouping of axes moves them by far more.
    stats = {framework: (d.mean(), d.std(), *np.quantile(d, [0.1, 0.5, 0.9]))
             for framework, d in draws.items()}
    spread = stats["keras"][1]
    np.testing.assert_allclose(stats["torch"], stats["keras"], rtol=0.05,
                               atol=0.1 * spread + 1e-7)
