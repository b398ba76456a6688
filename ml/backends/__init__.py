"""One backend per framework, imported lazily by name (torch always before TensorFlow)."""

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

BACKEND_MODULES = {"pytorch": "ml.backends.torch_backend",
                   "tensorflow": "ml.backends.keras_backend"}


class Backend(Protocol):
    """What the training driver, exporter and tests need of a framework.

    Weights cross the boundary in the canonical layout: a dict of float32 arrays named
    ``layers.{index}.{name}`` with the shapes each spec layer declares (`Layer.weights`).
    The builders are registered in `ml.registry`; the tables below are its views.
    """

    LAYER_BUILDERS: Mapping[str, Any]
    ACTIVATIONS: Mapping[str, Any]
    LOSSES: Mapping[str, Any]
    OPTIMIZERS: dict[str, Any]

    def configure(self, threads: int) -> None: ...

    def threads(self) -> int: ...

    def build(self, model_spec) -> Any: ...

    def fit(self, spec, data, hooks, device: str) -> tuple[Any, str]: ...

    def predict(self, native, x: np.ndarray) -> np.ndarray: ...

    def get_weights(self, native) -> dict[str, np.ndarray]: ...

    def set_weights(self, native, weights: dict[str, np.ndarray]) -> None: ...

    def library_versions(self) -> dict[str, str]:
        """The framework's libraries and their versions, for the model card."""
        ...

    def save_native(self, native, directory: Path) -> tuple[str, ...]:
        """Write the framework's own format of the model, if any; the files written."""
        ...


def get_backend(framework: str) -> Backend:
    if framework == "tensorflow":
        importlib.import_module(BACKEND_MODULES["pytorch"])  # torch first when both load
    return importlib.import_module(BACKEND_MODULES[framework])
