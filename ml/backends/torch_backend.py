"""PyTorch backend: builds an nn.Module from a spec and trains it on in-memory tensors.

Data arrive channels-last (the spec's layout); a layer that needs channels-first converts.
"""

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ml import spec as S

ACTIVATIONS = {
    "identity": nn.Identity,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "logistic": nn.Sigmoid,
    "softmax": lambda: nn.Softmax(dim=-1),
}


class DenseBlock(nn.Module):
    """Linear combination then activation; `logits=True` stops before the activation."""

    def __init__(self, layer: S.Dense, in_shape: S.Shape):
        super().__init__()
        self.linear = nn.Linear(in_shape[-1], layer.units, bias=layer.use_bias)
        nn.init.xavier_uniform_(self.linear.weight)  # glorot_uniform, as in Keras
        if layer.use_bias:
            nn.init.zeros_(self.linear.bias)
        self.activation = ACTIVATIONS[layer.activation]()

    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:
        net = self.linear(x)
        return net if logits else self.activation(net)

    # Canonical layout: kernel [fan_in, units] (torch stores [units, fan_in]).
    def canonical(self) -> dict[str, torch.Tensor]:
        weights = {"kernel": self.linear.weight.detach().T}
        if self.linear.bias is not None:
            weights["bias"] = self.linear.bias.detach()
        return weights

    def load_canonical(self, weights: dict[str, np.ndarray]) -> None:
        with torch.no_grad():
            self.linear.weight.copy_(torch.from_numpy(weights["kernel"]).T)
            if self.linear.bias is not None:
                self.linear.bias.copy_(torch.from_numpy(weights["bias"]))


class Stateless(nn.Module):
    """A layer without weights; `logits` does not apply to it."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.inner = module

    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:
        return self.inner(x)

    def canonical(self) -> dict[str, torch.Tensor]:
        return {}

    def load_canonical(self, weights: dict[str, np.ndarray]) -> None:
        pass


LAYER_BUILDERS = {
    "dense": DenseBlock,
    "dropout": lambda layer, in_shape: Stateless(nn.Dropout(layer.rate)),
    "flatten": lambda layer, in_shape: Stateless(nn.Flatten()),
}


class SpecModule(nn.Module):
    def __init__(self, model_spec: S.ModelSpec):
        super().__init__()
        blocks, shape = [], tuple(model_spec.input.shape)
        for layer in model_spec.layers:
            blocks.append(LAYER_BUILDERS[layer.type](layer, shape))
            shape = layer.output_shape(shape)
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:
        last = len(self.blocks) - 1
        for index, block in enumerate(self.blocks):
            x = block(x, logits=logits and index == last)
        return x


LOSSES = {
    "categorical_crossentropy": lambda out, y: F.cross_entropy(out, y),
    "binary_crossentropy": lambda out, y: F.binary_cross_entropy_with_logits(out, y),
    "mse": lambda out, y: F.mse_loss(out, y),
}

# Every default comes from the spec schema and is passed explicitly (torch's differ).
OPTIMIZERS = {
    "sgd": lambda params, o: torch.optim.SGD(params, lr=o.learning_rate, momentum=o.momentum,
                                             nesterov=o.nesterov),
    "adam": lambda params, o: torch.optim.Adam(params, lr=o.learning_rate,
                                               betas=(o.beta_1, o.beta_2), eps=o.epsilon),
}


def configure(threads: int) -> None:
    torch.set_num_threads(threads)


def build(model_spec: S.ModelSpec) -> SpecModule:
    return SpecModule(model_spec)


def _resolve_device(device: str) -> torch.device:
    if device in ("cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")




def fit(spec: S.JobSpec, data, hooks, device: str) -> tuple[SpecModule, str]:
    from ml.training import EpochMetrics

    torch.manual_seed(spec.training.seed)
    target = _resolve_device(device)
    model = build(spec.model).to(target)
    optimizer = OPTIMIZERS[spec.training.optimizer.type](model.parameters(),
                                                          spec.training.optimizer)
    loss_fn = LOSSES[spec.model.objective]
    objective, from_logits = spec.model.objective, spec.model.from_logits
    x_train = torch.from_numpy(data.x_train).to(target)
    y_train = torch.from_numpy(data.y_train).to(target)
    x_val = torch.from_numpy(data.x_val).to(target)
    y_val = torch.from_numpy(data.y_val).to(target)
    generator = torch.Generator().manual_seed(spec.training.seed)
    batch_size, n = spec.training.batch_size, len(x_train)

    for epoch in range(1, spec.training.epochs + 1):
        started = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=target)
        metric_sum = torch.zeros((), device=target)
        seen = 0
        for index in torch.randperm(n, generator=generator).to(target).split(batch_size):
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
        model.eval()
        with torch.no_grad():
            val_out = model(x_val, logits=from_logits)
            val_loss = float(loss_fn(val_out, y_val))
            val_metric = float(_metric_sum(objective, val_out, y_val)) / len(x_val)
        duration = time.perf_counter() - started
        metric_name = "mae" if objective == "mse" else "accuracy"
        hooks.on_epoch_end(EpochMetrics(
            epoch=epoch, loss=float(loss_sum) / seen, val_loss=val_loss,
            **{metric_name: float(metric_sum) / seen, f"val_{metric_name}": val_metric},
            learning_rate=float(optimizer.param_groups[0]["lr"]),
            duration_s=duration, samples_per_s=seen / duration,
        ))
        if hooks.should_stop():
            break
    return model.cpu().eval(), str(target)


def _metric_sum(objective: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Sum over the batch of accuracy (from logits) or absolute error."""
    if objective == "categorical_crossentropy":
        return (out.argmax(dim=-1) == y).sum()
    if objective == "binary_crossentropy":
        return ((out > 0) == (y > 0.5)).sum()
    return (out - y).abs().mean(dim=tuple(range(1, out.dim()))).sum()


def predict(model: SpecModule, x: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()


def get_weights(model: SpecModule) -> dict[str, np.ndarray]:
    return {f"layers.{i}.{name}": tensor.cpu().numpy().astype(np.float32, copy=True)
            for i, block in enumerate(model.blocks) for name, tensor in block.canonical().items()}


def set_weights(model: SpecModule, weights: dict[str, np.ndarray]) -> None:
    for i, block in enumerate(model.blocks):
        prefix = f"layers.{i}."
        block.load_canonical({k[len(prefix):]: np.ascontiguousarray(v) for k, v in weights.items()
                              if k.startswith(prefix)})
