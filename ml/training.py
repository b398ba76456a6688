"""The framework-agnostic training driver: data preparation, epoch reporting, early stopping.

It knows nothing of the model: a backend builds and fits it; this module hands the backend
prepared arrays and a `TrainingHooks` that it calls after every epoch and checks every batch.
"""

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ml.backends import get_backend
from ml.backends.interface import TrainingHooks
from ml.datasets import Dataset, Preprocessing, fit_preprocessing, split
from ml.epochs import EpochMetrics
from ml.errors import DataError
from ml.spec import JobSpec, analyze

CHECKPOINT_META = "checkpoint.json"


class Diverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass(frozen=True)
class PreparedData:
    x_train: np.ndarray  # float32 [n, *input_shape], preprocessed
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    preprocessing: Preprocessing
    test_index: np.ndarray  # int [n_test]: each test sample's place in the dataset


def prepare(spec: JobSpec, dataset: Dataset) -> PreparedData:
    """Split, reshape to the model's input and scale with training-split statistics."""
    input_shape = tuple(spec.model.input.shape)
    if math.prod(input_shape) != math.prod(dataset.x.shape[1:]):
        raise DataError(f"model.input.shape {list(input_shape)} does not fit the dataset's "
                        f"features {list(dataset.x.shape[1:])}")
    parts = split(dataset, spec.training.seed, spec.training.validation_split)
    x = dataset.x.reshape(len(dataset.x), *input_shape)
    y = dataset.y
    if spec.model.objective != "categorical_crossentropy":
        # Targets in the outputs' shape: a loss on [n, 5, 1] outputs and [n, 5] targets would
        # broadcast them to [n, 5, 5].
        output_shape = analyze(spec.model).output_shape
        if math.prod(output_shape) != math.prod(y.shape[1:]):
            raise DataError(f"the model's output {output_shape} does not fit the dataset's "
                            f"targets {list(y.shape[1:])}")
        y = y.astype(np.float32).reshape(len(y), *output_shape)
    method = spec.training.preprocessing
    first = spec.model.layers[0]
    if first.type == "embedding":
        method = "none"  # ids are not scaled
        top = int(dataset.x.max())
        if dataset.x.min() < 0 or top >= first.input_dim or not np.all(dataset.x % 1 == 0):
            raise DataError(f"model.layers[0].input_dim: {first.input_dim}, but the dataset's "
                            f"features are not integer ids in [0, {first.input_dim}) "
                            f"(found values up to {top})")
    preprocessing = fit_preprocessing(method, dataset.kind, dataset.x[parts.train],
                                      input_shape)
    return PreparedData(
        x_train=preprocessing.apply(x[parts.train]), y_train=y[parts.train],
        x_val=preprocessing.apply(x[parts.validation]), y_val=y[parts.validation],
        x_test=preprocessing.apply(x[parts.test]), y_test=y[parts.test],
        preprocessing=preprocessing, test_index=parts.test,
    )


class _Supervisor:
    """Wraps the caller's hooks with divergence detection and early stopping."""

    def __init__(self, spec: JobSpec, hooks: TrainingHooks):
        self.hooks = hooks
        self.early = spec.training.early_stopping
        self.best: float | None = None
        self.waited = 0
        self.stopped_early = False

    def on_epoch_end(self, metrics: EpochMetrics) -> None:
        if not math.isfinite(metrics.loss):
            raise Diverged(f"diverged at epoch {metrics.epoch} (loss={metrics.loss})")
        self.hooks.on_epoch_end(metrics)
        self.observe(metrics)

    def observe(self, metrics: EpochMetrics) -> None:
        """Early stopping's bookkeeping (also replayed from history when a job resumes)."""
        if self.early is None:
            return
        value = getattr(metrics, self.early.monitor)
        if value is None:
            return
        sign = -1.0 if self.early.monitor.endswith("accuracy") else 1.0
        if self.best is None or sign * value < sign * self.best - self.early.min_delta:
            self.best, self.waited = value, 0
        else:
            self.waited += 1
            self.stopped_early = self.waited >= self.early.patience

    def should_stop(self) -> bool:
        return self.stopped_early or self.hooks.should_stop()


@dataclass
class TrainResult:
    native: Any  # the backend's model
    device: str
    test_metrics: dict[str, float]
    stopped_early: bool
    test_outputs: np.ndarray  # the final outputs on `PreparedData.x_test`


def score(spec: JobSpec, outputs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy (over samples, or over time steps for a class per step) or mean absolute
    error of final outputs, computed the same for both backends."""
    if spec.model.objective == "categorical_crossentropy":
        return {"accuracy": float(np.mean(outputs.argmax(axis=-1) == y))}
    if spec.model.objective == "binary_crossentropy":
        return {"accuracy": float(np.mean((outputs > 0.5) == (y > 0.5)))}
    return {"mae": float(np.mean(np.abs(outputs - y.reshape(outputs.shape))))}


@dataclass
class Checkpoints:
    """Where a job's checkpoint lives, and when the next one is due.

    A checkpoint is written after an epoch when `min_interval_s` has passed since the last
    one, after the final epoch, and when training is about to stop (a worker handing its job
    back keeps its last finished epoch). With epochs longer than the interval, that is every
    epoch; with epochs of a few milliseconds, writing each would cost more than the epoch.
    """

    directory: Path
    min_interval_s: float = 0.0
    # Called first: whoever records epochs makes sure the checkpoint's epoch is recorded.
    before_write: Callable[[], None] | None = None
    # Called last, with the epoch and the state file just written: whoever keeps checkpoints
    # elsewhere too (an object store, for a job that resumes on another host) stores it.
    after_write: Callable[[int, Path], None] | None = None
    last_written: float = -math.inf

    @property
    def epoch(self) -> int:
        """The last epoch the checkpoint holds (0: none)."""
        meta = self.directory / CHECKPOINT_META
        if not meta.is_file():
            return 0
        epoch: int = json.loads(meta.read_text())["epoch"]
        return epoch

    def path(self, state_file: str) -> Path:
        return self.directory / state_file

    def due(self, epoch: int, epochs: int, stopping: bool) -> bool:
        return (stopping or epoch == epochs
                or time.monotonic() - self.last_written >= self.min_interval_s)

    def write(self, epoch: int, state_file: str, write: Callable[[Path], None]) -> None:
        """Write the backend's state through a temporary file, then record the epoch it
        holds: a crash at any point leaves the previous checkpoint whole."""
        if self.before_write is not None:
            self.before_write()
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = self.directory / f".{state_file}.tmp"
        write(temporary)
        os.replace(temporary, self.path(state_file))
        meta = self.directory / f".{CHECKPOINT_META}.tmp"
        meta.write_text(json.dumps({"epoch": epoch, "state": state_file}))
        os.replace(meta, self.directory / CHECKPOINT_META)
        if self.after_write is not None:
            self.after_write(epoch, self.path(state_file))
        self.last_written = time.monotonic()


def train(spec: JobSpec, data: PreparedData, hooks: TrainingHooks, device: str = "cpu",
          checkpoints: Checkpoints | None = None,
          history: Sequence[EpochMetrics] = ()) -> TrainResult:
    """Train, checkpointing as `checkpoints` says and resuming from the one already there.

    `history` holds the epochs already reported by an earlier attempt; those up to the
    checkpoint's epoch are replayed into early stopping so a resumed job decides the same way.
    """
    backend = get_backend(spec.framework)
    supervisor = _Supervisor(spec, hooks)
    resumed = checkpoints.epoch if checkpoints is not None else 0
    for metrics in history:
        if metrics.epoch <= resumed:
            supervisor.observe(metrics)
    native, used_device = backend.fit(spec, data, supervisor, device, checkpoints)
    outputs = backend.predict(native, data.x_test)
    test = score(spec, outputs, data.y_test)
    return TrainResult(native=native, device=used_device,
                       test_metrics={f"test_{k}": v for k, v in test.items()},
                       stopped_early=supervisor.stopped_early, test_outputs=outputs)
