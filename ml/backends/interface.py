"""The backend interface: what a framework's module provides (`Backend`) and what it is handed
to train with. `ml.training`'s classes satisfy the latter; each backend module the former."""

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from ml import spec as S
from ml.epochs import EpochMetrics

if TYPE_CHECKING:
    from ml.datasets import Preprocessing

Native = TypeVar("Native")  # a backend's model: what `build` and `fit` return


class TrainingData(Protocol):
    """The prepared arrays a backend fits on and validates with (`ml.training.PreparedData`)."""

    @property
    def x_train(self) -> np.ndarray: ...

    @property
    def y_train(self) -> np.ndarray: ...

    @property
    def x_val(self) -> np.ndarray: ...

    @property
    def y_val(self) -> np.ndarray: ...


class TrainingHooks(Protocol):
    def on_epoch_end(self, metrics: EpochMetrics) -> None: ...

    def should_stop(self) -> bool:
        """Checked after every batch: True ends training cooperatively."""
        ...


class CheckpointStore(Protocol):
    """Where a backend writes its training state and resumes from (`ml.training.Checkpoints`)."""

    @property
    def epoch(self) -> int:
        """The last epoch the checkpoint holds (0: none)."""
        ...

    def path(self, state_file: str) -> Path: ...

    def due(self, epoch: int, epochs: int, stopping: bool) -> bool: ...

    def write(self, epoch: int, state_file: str, write: Callable[[Path], None]) -> None: ...


class Backend(Protocol[Native]):
    """What the training driver, exporter and tests need of a framework.

    Weights cross the boundary in the canonical layout: a dict of float32 arrays named
    ``layers.{index}.{name}`` with the shapes each spec layer declares (`Layer.weights`).
    The builders are registered in `ml.registry`; the tables below are its views.
    """

    # The module's tables, read-only here.
    @property
    def LAYER_BUILDERS(self) -> Mapping[str, Any]: ...

    @property
    def ACTIVATIONS(self) -> Mapping[str, Any]: ...

    @property
    def LOSSES(self) -> Mapping[str, Any]: ...

    @property
    def OPTIMIZERS(self) -> Mapping[str, Any]: ...

    def configure(self, threads: int) -> None: ...

    def threads(self) -> int: ...

    def build(self, model_spec: S.ModelSpec) -> Native: ...

    def fit(self, spec: S.JobSpec, data: TrainingData, hooks: TrainingHooks, device: str,
            checkpoints: CheckpointStore | None = None) -> tuple[Native, str]: ...

    def predict(self, native: Native, x: np.ndarray) -> np.ndarray: ...

    def get_weights(self, native: Native) -> dict[str, np.ndarray]: ...

    def set_weights(self, native: Native, weights: dict[str, np.ndarray]) -> None: ...

    def library_versions(self) -> dict[str, str]:
        """The framework's libraries and their versions, for the model card."""
        ...

    def save_native(self, native: Native, directory: Path,
                    preprocessing: "Preprocessing") -> tuple[str, ...]:
        """Write the framework's own format of the model, if any, taking raw inputs (the
        preprocessing its first step); the files written."""
        ...
