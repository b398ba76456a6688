"""A published model in your own PyTorch code: the network rebuilt from its card's spec, its
downloaded weights (safetensors: nothing is unpickled) loaded into it, and the preprocessing
learnt from the training split as its first step, so that it takes raw inputs as `/predict`
does. Any version works, trained by either framework: the weights file is canonical."""

from pathlib import Path
from typing import Any


def torch_model(card: dict[str, Any], weights_file: Path) -> Any:
    """A `torch.nn.Module` in eval mode: raw inputs `[batch, *input shape]` (float32) →
    what `/predict` answers as `probabilities` (or the values, for regression)."""
    from safetensors.numpy import load_file

    from ml.backends import get_backend
    from ml.backends.torch_backend import RawInputs
    from ml.datasets import Preprocessing
    from ml.spec import JobSpec

    backend = get_backend("pytorch")
    network = backend.build(JobSpec.model_validate(card["spec"]).model)
    backend.set_weights(network, load_file(str(weights_file)))
    return RawInputs(network, Preprocessing.from_json(card["preprocessing"])).eval()
