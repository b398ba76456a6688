"""A published model in your own PyTorch code: the network rebuilt from its card's spec, its
downloaded weights (safetensors: nothing is unpickled) loaded into it, and the preprocessing
learnt from the training split as its first step, so that it takes raw inputs as `/predict`
does. Any version works, trained by either framework: the weights file is canonical."""

from pathlib import Path
from typing import Any

import numpy as np


def torch_model(card: dict[str, Any], weights_file: Path) -> Any:
    """A `torch.nn.Module` in eval mode: raw inputs `[batch, *input shape]` (float32) →
    what `/predict` answers as `probabilities` (or the values, for regression)."""
    import torch
    from safetensors.numpy import load_file

    from ml.backends import get_backend
    from ml.spec import JobSpec

    backend = get_backend("pytorch")
    network = backend.build(JobSpec.model_validate(card["spec"]).model)
    backend.set_weights(network, load_file(str(weights_file)))
    scaling = card["preprocessing"]

    class RawInputs(torch.nn.Module):
        """x' = (x - shift) / scale with the training split's statistics, then the network."""

        def __init__(self) -> None:
            super().__init__()
            self.network = network
            self.register_buffer("shift", torch.from_numpy(np.asarray(scaling["shift"],
                                                                      np.float32)))
            self.register_buffer("scale", torch.from_numpy(np.asarray(scaling["scale"],
                                                                      np.float32)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.network((x - self.shift) / self.scale)  # type: ignore[no-any-return]

    return RawInputs().eval()
