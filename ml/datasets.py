"""Datasets: built-ins from installed packages, schemas, the canonical stored form, seeded
splits and preprocessing."""

import hashlib
import math
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ml.errors import DataError

TEST_FRACTION = 0.2
PREVIEW_ROWS = 5
# A preview shows feature values only for samples this small; for larger ones, only targets.
PREVIEW_MAX_VALUES = 1024


@dataclass(frozen=True)
class Dataset:
    id: str
    x: np.ndarray  # float32 [n, *feature_shape]
    # int64 [n] class indices, or [n, steps] one per time step; or float32 [n, *target_shape]
    y: np.ndarray
    task: str
    kind: str  # "tabular", "image" or "sequence"
    class_names: list[str] | None = None
    feature_names: list[str] | None = None
    description: str = ""
    target_name: str | None = None
    # The last this many samples are the test split the data came with (MNIST's t10k files,
    # CIFAR's test batch), kept as the test split; None: a seeded 20% of the samples.
    test_samples: int | None = None
    schema: dict[str, Any] = field(init=False)  # JSON, as the API and the database hold it

    def __post_init__(self) -> None:
        schema = {
            "id": self.id,
            "description": self.description,
            "task": self.task,
            "kind": self.kind,
            "feature_shape": list(self.x.shape[1:]),
            "feature_names": self.feature_names,
            "dtype": "float32",
            "num_samples": int(len(self.x)),
            "num_classes": len(self.class_names) if self.class_names else None,
            "class_names": self.class_names,
            # Of time steps, when there is a class per step.
            "class_counts": (np.bincount(self.y.ravel(), minlength=len(self.class_names))
                             .tolist() if self.class_names else None),
            # Classification: None for one class per sample, [steps] for one per time step.
            "target_shape": (list(self.y.shape[1:])
                             if self.task == "regression" or self.y.ndim > 1 else None),
            "target_name": self.target_name,
            **({"test_samples": self.test_samples} if self.test_samples else {}),
            "sha256": content_sha256(self.x, self.y),
        }
        object.__setattr__(self, "schema", schema)

    def preview(self, rows: int = PREVIEW_ROWS) -> list[dict[str, Any]]:
        """The first samples as JSON: features (when small enough to read) and the target."""
        show_features = math.prod(self.x.shape[1:]) <= PREVIEW_MAX_VALUES
        samples = []
        for index in range(min(rows, len(self.x))):
            target = (np.asarray(self.class_names)[self.y[index]].tolist() if self.class_names
                      else readable(self.y[index]))
            sample = {"features": readable(self.x[index])} if show_features else {}
            samples.append({**sample, "target": target})
        return samples


def readable(values: np.ndarray) -> float | list[Any]:
    # Through the shortest text of each float32, so 5.1 reads 5.1, not 5.0999999.
    as_json: float | list[Any] = np.asarray(values).astype(str).astype(float).tolist()
    return as_json


def content_sha256(x: np.ndarray, y: np.ndarray) -> str:
    """The identity of a dataset's content: dtypes, shapes and bytes of both arrays.

    Hashes the arrays' memory in place (no copy), so a large upload is not held twice.
    """
    digest = hashlib.sha256()
    for array in (x, y):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.data.cast("B"))
    return digest.hexdigest()


def _sklearn_bunch(loader_name: str, dataset_id: str, description: str) -> Dataset:
    from sklearn import datasets

    bunch = getattr(datasets, loader_name)()
    return Dataset(
        id=dataset_id,
        x=np.asarray(bunch.data, dtype=np.float32),
        y=np.asarray(bunch.target, dtype=np.int64),
        task="classification",
        kind="tabular",
        class_names=[str(name) for name in bunch.target_names],
        feature_names=[str(name) for name in bunch.feature_names],
        description=description,
    )


def _digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return Dataset(
        id="builtin:digits",
        x=np.asarray(bunch.images, dtype=np.float32)[..., None],  # [1797, 8, 8, 1], 0..16
        y=np.asarray(bunch.target, dtype=np.int64),
        task="classification",
        kind="image",
        class_names=[str(name) for name in bunch.target_names],
        description="8×8 grey images of handwritten digits, pixel values 0–16",
    )


def _moons() -> Dataset:
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=1000, noise=0.2, random_state=0)
    return Dataset(
        id="builtin:moons",
        x=x.astype(np.float32),
        y=y.astype(np.int64),
        task="classification",
        kind="tabular",
        class_names=["0", "1"],
        feature_names=["x1", "x2"],
        description="Two interleaving half circles (playground), 1000 points",
    )


def _playground(dataset_id: str, x: np.ndarray, y: np.ndarray, description: str) -> Dataset:
    return Dataset(id=dataset_id, x=x.astype(np.float32), y=y.astype(np.int64),
                   task="classification", kind="tabular", class_names=["0", "1"],
                   feature_names=["x1", "x2"], description=description)


def _circles() -> Dataset:
    from sklearn.datasets import make_circles

    x, y = make_circles(n_samples=1000, noise=0.1, factor=0.5, random_state=0)
    return _playground("builtin:circles", x, y, "A circle inside a ring (playground), 1000 points")


def _spirals() -> Dataset:
    # Two interleaved arms, as in TensorFlow Playground: radius grows with the angle.
    rng = np.random.default_rng(0)
    n = 500
    t = np.sqrt(rng.uniform(0, 1, n)) * 3 * np.pi
    arms = [np.stack([t * np.cos(t + shift), t * np.sin(t + shift)], axis=1)
            for shift in (0.0, np.pi)]
    x = np.concatenate(arms) + rng.normal(0, 0.3, (2 * n, 2))
    y = np.repeat([0, 1], n)
    return _playground("builtin:spirals", x, y, "Two interleaved spirals (playground), 1000 points")


def _xor() -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (1000, 2))
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    return _playground("builtin:xor", x, y, "Exclusive or of the signs of x1 and x2 (playground)")


SINE_WINDOW = 20
FORECAST_STEPS = 5  # of builtin:sine_forecast
SEQUENCES = 2000  # of builtin:digit_sequences and builtin:reverse_sequence
DIGIT_SEQUENCE_STEPS = 3
REVERSE_STEPS, REVERSE_VOCABULARY = 6, 10


def _noisy_sine() -> np.ndarray:
    rng = np.random.default_rng(0)
    steps = 1020
    return np.sin(np.linspace(0, 60, steps)) + rng.normal(0, 0.05, steps)


def _sine() -> Dataset:
    # Windows of 20 steps of a noisy sine; the target is the step that follows each window.
    series, window = _noisy_sine(), SINE_WINDOW
    x = np.stack([series[i:i + window] for i in range(len(series) - window)])[..., None]
    y = series[window:].reshape(-1, 1)
    return Dataset(
        id="builtin:sine", x=x.astype(np.float32), y=y.astype(np.float32), task="regression",
        kind="sequence", description="Noisy sine: 20-step windows → the next value",
    )


def _digit_sequences() -> Dataset:
    # Sequences of the digits' images; the label is the largest digit of the sequence, which no
    # single image decides: a model must read every step. Labels are drawn first, uniformly,
    # then digits up to the label with the label at a random step, so classes are balanced.
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(0)
    digits = load_digits()
    labels = rng.integers(0, 10, SEQUENCES)
    steps = (rng.random((SEQUENCES, DIGIT_SEQUENCE_STEPS)) * (labels[:, None] + 1)).astype(int)
    steps[np.arange(SEQUENCES), rng.integers(0, DIGIT_SEQUENCE_STEPS, SEQUENCES)] = labels
    # One image of each step's digit, drawn from that digit's images.
    by_digit = [np.flatnonzero(digits.target == d) for d in range(10)]
    picks = np.vectorize(lambda d: rng.choice(by_digit[d]))(steps)
    images = np.asarray(digits.images, dtype=np.float32)[picks][..., None]  # [n, steps, 8, 8, 1]
    return Dataset(
        id="builtin:digit_sequences", x=images, y=labels.astype(np.int64),
        task="classification", kind="sequence", class_names=[str(d) for d in range(10)],
        description=f"Sequences of {DIGIT_SEQUENCE_STEPS} digit images (8×8, 0–16) → the "
                    "largest of their digits",
    )


def _reverse_sequence() -> Dataset:
    # Integer sequences; the target is the sequence reversed, one class per step.
    rng = np.random.default_rng(0)
    x = rng.integers(0, REVERSE_VOCABULARY, (SEQUENCES, REVERSE_STEPS))
    return Dataset(
        id="builtin:reverse_sequence", x=x[..., None].astype(np.float32),  # [n, steps, 1]
        y=x[:, ::-1].astype(np.int64),  # [n, steps]
        task="classification", kind="sequence",
        class_names=[str(v) for v in range(REVERSE_VOCABULARY)],
        description=f"Sequences of {REVERSE_STEPS} integers 0–{REVERSE_VOCABULARY - 1} → the "
                    "same sequence reversed (one class per step)",
    )


def _sine_forecast() -> Dataset:
    # The noisy sine of builtin:sine; the target is the FORECAST_STEPS values after each window.
    series = _noisy_sine()
    count = len(series) - SINE_WINDOW - FORECAST_STEPS + 1
    x = np.stack([series[i:i + SINE_WINDOW] for i in range(count)])[..., None]
    y = np.stack([series[i + SINE_WINDOW:i + SINE_WINDOW + FORECAST_STEPS]
                  for i in range(count)])
    return Dataset(
        id="builtin:sine_forecast", x=x.astype(np.float32), y=y.astype(np.float32),
        task="regression", kind="sequence",
        description=f"Noisy sine: {SINE_WINDOW}-step windows → the next {FORECAST_STEPS} values",
    )


BUILTINS: dict[str, Callable[[], Dataset]] = {
    "builtin:iris": lambda: _sklearn_bunch("load_iris", "builtin:iris",
                                           "Iris flowers: 4 measurements, 3 species"),
    "builtin:wine": lambda: _sklearn_bunch("load_wine", "builtin:wine",
                                           "Wine: 13 chemical measurements, 3 cultivars"),
    "builtin:breast_cancer": lambda: _sklearn_bunch(
        "load_breast_cancer", "builtin:breast_cancer",
        "Breast cancer Wisconsin: 30 features, malignant or benign"),
    "builtin:digits": _digits,
    "builtin:moons": _moons,
    "builtin:circles": _circles,
    "builtin:spirals": _spirals,
    "builtin:xor": _xor,
    "builtin:sine": _sine,
    "builtin:sine_forecast": _sine_forecast,
    "builtin:digit_sequences": _digit_sequences,
    "builtin:reverse_sequence": _reverse_sequence,
}


@cache
def load_builtin(dataset_id: str) -> Dataset:
    try:
        return BUILTINS[dataset_id]()
    except KeyError:
        raise DataError(f"unknown dataset '{dataset_id}'") from None


# --- the canonical stored form ----------------------------------------------------------------


def save_canonical(dataset: Dataset, path: Path) -> None:
    """Write x and y as one uncompressed NPZ, atomically: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name of its own: two uploads of the same content may be written at once.
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
    with partial.open("wb") as handle:
        np.savez(handle, x=dataset.x, y=dataset.y)
    os.replace(partial, path)


def load_canonical(path: Path, schema: Mapping[str, Any]) -> Dataset:
    """A stored dataset with its schema's names; refused if its content is not that hash."""
    with np.load(path, allow_pickle=False) as arrays:
        x, y = arrays["x"], arrays["y"]
    dataset = Dataset(id=schema["id"], x=x, y=y, task=schema["task"], kind=schema["kind"],
                      class_names=schema["class_names"], feature_names=schema["feature_names"],
                      description=schema["description"], target_name=schema["target_name"],
                      test_samples=schema.get("test_samples"))
    if dataset.schema["sha256"] != schema["sha256"]:
        raise DataError(f"the stored file of dataset '{schema['id']}' does not match its sha256")
    return dataset


# --- splits and preprocessing ----------------------------------------------------------------


def split_sizes(num_samples: int, validation_split: float,
                test_samples: int | None = None) -> dict[str, int]:
    """Training, validation and test sample counts, as `split` draws them (the dataset's own
    test samples, if it came with them)."""
    test = test_samples or math.ceil(num_samples * TEST_FRACTION)
    validation = math.ceil((num_samples - test) * validation_split)
    return {"train": num_samples - test - validation, "validation": validation, "test": test}


def split_record(schema: Mapping[str, Any], seed: int,
                 validation_split: float) -> dict[str, Any]:
    """What a job records of the split it trains on: enough to draw the same one again."""
    test_samples = schema.get("test_samples")
    # A dataset that came with its test split says so, with the share that split is.
    test = ({"test_fraction": round(test_samples / schema["num_samples"], 6),
             "test_from_data": True} if test_samples else {"test_fraction": TEST_FRACTION})
    return {"seed": seed, **test, "validation_split": validation_split,
            "stratified": _stratified(schema["task"], schema.get("target_shape")),
            **split_sizes(schema["num_samples"], validation_split, test_samples)}


def split_problem(num_samples: int, num_classes: int | None, validation_split: float,
                  test_samples: int | None = None) -> str | None:
    """Why these split fractions cannot work on this dataset, or None."""
    sizes = split_sizes(num_samples, validation_split, test_samples)
    needed = num_classes or 1
    test_split = (f"its own {test_samples} test samples" if test_samples
                  else f"the {TEST_FRACTION:.0%} test split")
    for part, size in (("training", sizes["train"]), ("validation", sizes["validation"])):
        if size < needed:
            return (f"{validation_split} leaves {size} {part} samples of {num_samples} "
                    f"(after {test_split}); at least {needed} needed")
    return None


def _stratified(task: str, target_shape: list[int] | None) -> bool:
    """Splits keep the class shares of one class per sample; a class per step has no one class."""
    return task == "classification" and not target_shape


@dataclass(frozen=True)
class Split:
    train: np.ndarray  # indices
    validation: np.ndarray
    test: np.ndarray


def split(dataset: Dataset, seed: int, validation_split: float) -> Split:
    """Seeded, stratified (for classification) train/validation/test indices.

    The test split depends only on the seed, never on `validation_split` (or is the test
    samples the dataset came with), and is never used for training or early stopping.
    """
    from sklearn.model_selection import train_test_split

    problem = split_problem(len(dataset.x), len(dataset.class_names or []) or None,
                            validation_split, dataset.test_samples)
    if problem:
        raise DataError(f"training.validation_split: {problem}")
    indices = np.arange(len(dataset.x))
    stratified = _stratified(dataset.task, dataset.schema["target_shape"])
    if dataset.test_samples:
        rest, test = np.split(indices, [len(indices) - dataset.test_samples])
    else:
        stratify = dataset.y if stratified else None
        rest, test = train_test_split(indices, test_size=TEST_FRACTION, random_state=seed,
                                      stratify=stratify)
    stratify = dataset.y[rest] if stratified else None
    train, validation = train_test_split(rest, test_size=validation_split, random_state=seed,
                                         stratify=stratify)
    return Split(train=np.sort(train), validation=np.sort(validation), test=np.sort(test))


@dataclass(frozen=True)
class Preprocessing:
    """x' = (x - shift) / scale, with statistics of the training split, in the model's layout."""

    method: str
    shift: np.ndarray  # float32, model input shape
    scale: np.ndarray

    def apply(self, x: np.ndarray) -> np.ndarray:
        return np.asarray((x - self.shift) / self.scale, np.float32)

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "shift": self.shift.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Preprocessing":
        return cls(data["method"], np.asarray(data["shift"], np.float32),
                   np.asarray(data["scale"], np.float32))


def fit_preprocessing(method: str, kind: str, x_train: np.ndarray,
                      input_shape: tuple[int, ...]) -> Preprocessing:
    """Statistics from the training split, broadcast to the feature shape, then laid out in
    the model's input shape (a model may read 8×8×1 images as 64 flat features)."""
    if method == "auto":
        method = "minmax" if kind == "image" else "standardize"
    feature_shape = x_train.shape[1:]
    if method == "standardize" and kind == "sequence":
        # One mean and deviation for all time steps: the series is the same quantity.
        shift, scale = np.full(feature_shape, x_train.mean()), np.full(feature_shape, x_train.std())
    elif method == "standardize":
        shift = x_train.mean(axis=0)
        scale = x_train.std(axis=0)
    elif method == "minmax":
        # One range for all pixels: per-pixel ranges would blow up always-dark borders.
        low, high = float(x_train.min()), float(x_train.max())
        shift, scale = np.full(feature_shape, low), np.full(feature_shape, high - low)
    else:
        shift, scale = np.zeros(feature_shape), np.ones(feature_shape)
    scale = np.where(scale < 1e-8, 1.0, scale)
    return Preprocessing(method, np.asarray(shift, np.float32).reshape(input_shape),
                         np.asarray(scale, np.float32).reshape(input_shape))
