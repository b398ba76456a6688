"""Each activation's numpy reference (`ml.catalog`), from which the catalog draws its curve,
computes what both backends' registered activations compute."""

import importlib

import numpy as np
import pytest

from ml.catalog import ACTIVATIONS
from ml.registry import KERAS, TORCH
from ml.spec import catalog

# Net inputs from -6 to 6 in rows of three units (softmax normalizes along a row); an even
# count of points keeps 0 itself, where the reciprocal has no value, off the grid.
GRID = np.linspace(-6.0, 6.0, 240).reshape(-1, 3)


@pytest.fixture(scope="module", autouse=True)
def registered():
    """Run both backends' registrations (torch first, as a worker loads them)."""
    for backend in (TORCH, KERAS):
        importlib.import_module(backend.module)


def _torch(name: str) -> np.ndarray:
    import torch

    return TORCH.activations[name](torch.from_numpy(GRID.astype(np.float32))).numpy()


def _keras(name: str) -> np.ndarray:
    import keras

    function = keras.activations.get(KERAS.activations[name])
    return keras.ops.convert_to_numpy(function(GRID.astype(np.float32)))


@pytest.mark.parametrize("backend", [_torch, _keras], ids=["torch", "keras"])
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_the_reference_agrees_with_the_backend(name, backend):
    expected = ACTIVATIONS[name].reference(GRID)
    np.testing.assert_allclose(backend(name), expected, rtol=1e-5, atol=1e-6, err_msg=name)


def test_the_catalog_draws_each_curve_from_its_reference():
    for served in catalog()["activations"]:
        g, values = np.array(served["curve"]["g"]), served["curve"]["value"]
        pairs = np.stack([g, np.zeros_like(g)], axis=-1)
        with np.errstate(divide="ignore"):
            expected = ACTIVATIONS[served["name"]].reference(pairs)[:, 0]
        finite = np.isfinite(expected)
        assert [v is None for v in values] == list(~finite), served["name"]
        np.testing.assert_allclose([v for v in values if v is not None], expected[finite],
                                   rtol=1e-4, err_msg=served["name"])
    curves = {a["name"]: a["curve"]["value"] for a in catalog()["activations"]}
    # softmax is drawn as one of two units whose other net input is 0: the logistic
    assert curves["softmax"] == curves["logistic"]
    assert curves["reciprocal"].count(None) == 1  # at g = 0
