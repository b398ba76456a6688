"""PyTorch backend: builds an nn.Module from a spec and trains it on in-memory tensors."""

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ml import spec as S
from ml.backends.interface import CheckpointStore, TrainingData, TrainingHooks
from ml.backends.torch_layers import SpecModule
from ml.backends.torch_optim import KerasAdagrad, KerasAdam, KerasRMSprop
from ml.datasets import Preprocessing
from ml.epochs import EpochMetrics
from ml.registry import TORCH


def _cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Over the last axis, with a class index per sample or per time step: [n, (steps,) C]
    logits and [n, (steps)] targets, averaged over every step as Keras averages."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


TORCH.objectives.add({
    "categorical_crossentropy": _cross_entropy,
    "binary_crossentropy": F.binary_cross_entropy_with_logits,
    "mse": F.mse_loss,
    "mae": F.l1_loss,
    "huber": lambda out, y: F.huber_loss(out, y, delta=1.0),
})
# The registry's tables under the names the `Backend` interface gives them.
LAYER_BUILDERS, ACTIVATIONS, COMBINATIONS, INITIALIZERS, LOSSES = (
    TORCH.layers, TORCH.activations, TORCH.combinations, TORCH.initializers, TORCH.objectives)

# Every default comes from the spec schema and is passed explicitly (torch's differ).
# Each takes the parameters to train and the spec's optimizer of its type.
OPTIMIZERS: dict[str, Callable[[list[nn.Parameter], Any], torch.optim.Optimizer]] = {
    "sgd": lambda params, o: torch.optim.SGD(params, lr=o.learning_rate, momentum=o.momentum,
                                             nesterov=o.nesterov),
    "adadelta": lambda params, o: torch.optim.Adadelta(params, lr=o.learning_rate, rho=o.rho,
                                                       eps=o.epsilon),
    "adagrad": lambda params, o: KerasAdagrad(params, o.learning_rate,
                                              o.initial_accumulator_value, o.epsilon),
    "rmsprop": lambda params, o: KerasRMSprop(params, o.learning_rate, o.rho, o.momentum,
                                              o.epsilon, o.centered),
    "adam": lambda params, o: KerasAdam(params, o.learning_rate, o.beta_1, o.beta_2, o.epsilon),
    "adamw": lambda params, o: KerasAdam(params, o.learning_rate, o.beta_1, o.beta_2, o.epsilon,
                                         o.weight_decay),
}


def configure(threads: int) -> None:
    torch.set_num_threads(threads)


def threads() -> int:
    """The intra-op threads this process trains with."""
    return torch.get_num_threads()


def build(model_spec: S.ModelSpec) -> SpecModule:
    return SpecModule(model_spec)


def _resolve_device(device: str) -> torch.device:
    if device in ("cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


CHECKPOINT_FILE = "torch.pt"


def fit(spec: S.JobSpec, data: TrainingData, hooks: TrainingHooks, device: str,
        checkpoints: CheckpointStore | None = None) -> tuple[SpecModule, str]:

    torch.manual_seed(spec.training.seed)
    target = _resolve_device(device)
    model = build(spec.model).to(target)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = OPTIMIZERS[spec.training.optimizer.type](trainable, spec.training.optimizer)
    loss_fn = TORCH.objectives[spec.model.objective]
    objective, from_logits = spec.model.objective, spec.model.from_logits
    x_train = torch.from_numpy(data.x_train).to(target)
    y_train = torch.from_numpy(data.y_train).to(target)
    x_val = torch.from_numpy(data.x_val).to(target)
    y_val = torch.from_numpy(data.y_val).to(target)
    generator = torch.Generator().manual_seed(spec.training.seed)
    batch_size, n = spec.training.batch_size, len(x_train)
    metric_name = "accuracy" if spec.model.task == "classification" else "mae"
    start = checkpoints.epoch if checkpoints is not None else 0
    if checkpoints is not None and start:
        # Weights, optimizer state and every random stream: the resumed epochs are the ones
        # an uninterrupted run would have trained.
        path = checkpoints.path(CHECKPOINT_FILE)
        # On the CPU: the random states must be CPU tensors; load_state_dict moves the rest.
        state = torch.load(path, weights_only=True, map_location="cpu")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        if "cuda_rng" in state and target.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"])
        generator.set_state(state["generator"])

    def save(store: CheckpointStore, epoch: int) -> None:
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "rng": torch.get_rng_state(), "generator": generator.get_state()}
        if target.type == "cuda":  # dropout on the GPU draws from the device's own stream
            state["cuda_rng"] = torch.cuda.get_rng_state()
        store.write(epoch, CHECKPOINT_FILE, lambda path: torch.save(state, path))

    for epoch in range(start + 1, spec.training.epochs + 1):
        started = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=target)
        metric_sum = torch.zeros((), device=target)
        seen = 0
        for index in torch.split(torch.randperm(n, generator=generator).to(target), batch_size):
            xb, yb = x_train[index], y_train[index]
            out = model(xb, logits=from_logits)
            loss = loss_fn(out, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                loss_sum += loss.detach() * len(index)
                metric_sum += _metric_sum(objective, out.detach(), yb)
            seen += len(index)
            if hooks.should_stop():
                break
        if seen < n:
            break  # stopped within the epoch: an unfinished epoch is neither reported nor kept
        model.eval()
        with torch.no_grad():
            val_out = model(x_val, logits=from_logits)
            val_loss = float(loss_fn(val_out, y_val))
            val_metric = float(_metric_sum(objective, val_out, y_val)) / len(x_val)
        duration = time.perf_counter() - started
        hooks.on_epoch_end(EpochMetrics(
            epoch=epoch, loss=float(loss_sum) / seen, val_loss=val_loss,
            **{metric_name: float(metric_sum) / seen, f"val_{metric_name}": val_metric},
            learning_rate=float(optimizer.param_groups[0]["lr"]),
            duration_s=duration, samples_per_s=seen / duration,
        ))
        stopping = hooks.should_stop()
        if checkpoints is not None and checkpoints.due(epoch, spec.training.epochs, stopping):
            save(checkpoints, epoch)
        if stopping:
            break
    return model.cpu().eval(), str(target)


def _metric_sum(objective: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Sum over the batch of each sample's accuracy (from logits; the share of its time steps
    right, for a class per step) or mean absolute error."""
    if objective == "categorical_crossentropy":
        right = out.argmax(dim=-1) == y
    elif objective == "binary_crossentropy":
        right = (out > 0) == (y > 0.5)
    else:
        return (out - y).abs().reshape(len(out), -1).mean(dim=1).sum()
    return right.reshape(len(right), -1).float().mean(dim=1).sum()


def predict(model: SpecModule, x: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        outputs: np.ndarray = model(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()
    return outputs


def get_weights(model: SpecModule) -> dict[str, np.ndarray]:
    return {f"layers.{i}.{name}": tensor.cpu().numpy().astype(np.float32, copy=True)
            for i, block in enumerate(model.layer_blocks())
            for name, tensor in block.canonical().items()}


def set_weights(model: SpecModule, weights: dict[str, np.ndarray]) -> None:
    for i, block in enumerate(model.layer_blocks()):
        prefix = f"layers.{i}."
        block.load_canonical({k[len(prefix):]: np.ascontiguousarray(v, np.float32)
                              for k, v in weights.items() if k.startswith(prefix)})


def library_versions() -> dict[str, str]:
    return {"torch": torch.__version__}


def save_native(native: SpecModule, directory: Path,
                preprocessing: Preprocessing) -> tuple[str, ...]:
    """Nothing beyond the safetensors weights: a pickled module is never written (the client
    rebuilds the module from the spec, `capas.native.torch_model`)."""
    return ()


class RawInputs(torch.nn.Module):
    """A trained network behind its preprocessing, x' = (x - shift) / scale with the training
    split's statistics: raw inputs in, what `/predict` answers out (`capas.native`)."""

    shift: torch.Tensor  # model input shape, as buffers: they follow the module's device
    scale: torch.Tensor

    def __init__(self, network: SpecModule, preprocessing: Preprocessing):
        super().__init__()
        self.network = network
        self.register_buffer("shift", torch.from_numpy(preprocessing.shift))
        self.register_buffer("scale", torch.from_numpy(preprocessing.scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs: torch.Tensor = self.network((x - self.shift) / self.scale)
        return outputs
