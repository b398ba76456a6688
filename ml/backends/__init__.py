"""One backend per framework, imported lazily by name (torch always before TensorFlow).

Each backend is a module that satisfies `Backend` (`ml.backends.interface`); `get_backend`
returns it as one, so mypy checks both modules against the interface.
"""

from typing import Any

from ml.backends.interface import Backend


def get_backend(framework: str) -> Backend[Any]:
    """The backend of `framework` ("pytorch" or "tensorflow"), imported on first use."""
    from ml.backends import torch_backend  # first also where TensorFlow loads after it

    if framework == "pytorch":
        return torch_backend
    if framework == "tensorflow":
        from ml.backends import keras_backend

        return keras_backend
    raise KeyError(framework)
