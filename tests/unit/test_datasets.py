"""Built-in datasets, seeded stratified splits and training-split preprocessing."""

import numpy as np
import pytest

from ml.datasets import BUILTINS, fit_preprocessing, load_builtin, split
from ml.errors import DataError
from tests.conftest import ROOT


@pytest.mark.parametrize("dataset_id", list(BUILTINS))
def test_builtin_schema_describes_the_data(dataset_id):
    dataset = load_builtin(dataset_id)
    schema = dataset.schema
    assert schema["num_samples"] == len(dataset.x) == len(dataset.y)
    assert schema["feature_shape"] == list(dataset.x.shape[1:])
    if schema["task"] == "classification":
        # Of samples, or of time steps for a class per step.
        steps = int(np.prod(schema["target_shape"] or [1]))
        assert sum(schema["class_counts"]) == schema["num_samples"] * steps
    else:
        assert schema["target_shape"] == list(dataset.y.shape[1:])
    assert len(schema["sha256"]) == 64
    assert np.isfinite(dataset.x).all()


def test_digits_are_images_channels_last():
    assert load_builtin("builtin:digits").schema["feature_shape"] == [8, 8, 1]


def test_unknown_builtin():
    with pytest.raises(DataError, match="unknown dataset 'builtin:nope'"):
        load_builtin("builtin:nope")


def test_splits_are_seeded_disjoint_stratified_and_test_is_fixed():
    dataset = load_builtin("builtin:iris")
    a, b = split(dataset, 7, 0.2), split(dataset, 7, 0.3)
    assert np.array_equal(a.test, b.test)  # the test split depends on the seed only
    assert np.array_equal(a.train, split(dataset, 7, 0.2).train)
    assert not np.array_equal(a.test, split(dataset, 8, 0.2).test)
    union = np.concatenate([a.train, a.validation, a.test])
    assert len(np.unique(union)) == len(dataset.x)
    assert np.bincount(dataset.y[a.test]).tolist() == [10, 10, 10]


def test_preprocessing_uses_training_statistics_in_the_model_layout():
    x = np.arange(24, dtype=np.float32).reshape(3, 2, 2, 2)
    minmax = fit_preprocessing("auto", "image", x, (8,))
    assert minmax.method == "minmax" and minmax.shift.shape == (8,)
    assert minmax.apply(x.reshape(3, 8)).min() == 0 and minmax.apply(x.reshape(3, 8)).max() == 1
    standard = fit_preprocessing("auto", "tabular", x.reshape(3, 8), (8,))
    assert np.allclose(standard.apply(x.reshape(3, 8)).mean(axis=0), 0, atol=1e-6)
    constant = fit_preprocessing("standardize", "tabular", np.ones((4, 2), np.float32), (2,))
    assert np.all(constant.scale == 1.0)  # no division by zero on constant features


def test_the_readme_names_every_builtin():
    row = next(line for line in (ROOT / "README.md").read_text().splitlines()
               if line.startswith("| datasets |"))
    assert [name for name in BUILTINS if f"`{name}`" not in row] == []
