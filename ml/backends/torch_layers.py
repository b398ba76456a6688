"""PyTorch builders for every spec layer type, activation, combination and initializer,
registered in `ml.registry.TORCH`.

Tensors stay channels-last between layers (the spec's layout, [batch, *spatial, channels]);
convolutions and poolings transpose to channels-first around the torch op. Every block keeps
its weights in, or maps them to, the canonical layout of `ml.spec` (Keras's), so weights cross
between the frameworks unchanged.
"""

import math
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ml import spec as S
from ml.catalog import LEAKY_RELU_SLOPE
from ml.registry import TORCH

TORCH.activations.add({
    "identity": lambda g: g,
    "exponential": torch.exp,
    "reciprocal": torch.reciprocal,
    "square": torch.square,
    "logistic": torch.sigmoid,
    "softmax": lambda g: torch.softmax(g, dim=-1),
    "gauss": lambda g: torch.exp(-torch.square(g)),
    "sine": torch.sin,
    "cosine": torch.cos,
    "elliott": lambda g: g / (1 + g.abs()),
    "tanh": torch.tanh,
    "arctan": lambda g: torch.atan(g) * (2 / math.pi),
    "relu": F.relu,
    "leaky_relu": lambda g: F.leaky_relu(g, LEAKY_RELU_SLOPE),
    "elu": F.elu,
    "selu": F.selu,
    "gelu": F.gelu,  # exact (erf), as Keras's default
    "softplus": F.softplus,
    "silu": F.silu,
})


# --- initializers, in Keras's formulas on the canonical shapes -------------------------------


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


Initializer = Callable[[torch.Tensor], torch.Tensor]  # fills a tensor in place and returns it


def _uniform(limit: float) -> Initializer:
    return lambda t: nn.init.uniform_(t, -limit, limit)


def _truncated(std: float) -> Initializer:
    # Keras scales the deviation so that the truncated (±2σ) distribution keeps it.
    std = std / 0.87962566103423978
    return lambda t: nn.init.trunc_normal_(t, 0.0, std, -2 * std, 2 * std)


def _orthogonal(tensor: torch.Tensor) -> torch.Tensor:
    # Keras's: an orthogonal matrix [prod(shape[:-1]), shape[-1]]. torch's own groups the axes
    # as [shape[0], prod(shape[1:])], another matrix from three axes on (a conv kernel).
    matrix = nn.init.orthogonal_(torch.empty(math.prod(tensor.shape[:-1]), tensor.shape[-1]))
    return tensor.copy_(matrix.reshape(tensor.shape))


TORCH.initializers.add({
    "glorot_uniform": lambda fan_in, fan_out: _uniform(math.sqrt(6 / (fan_in + fan_out))),
    "glorot_normal": lambda fan_in, fan_out: _truncated(math.sqrt(2 / (fan_in + fan_out))),
    "he_uniform": lambda fan_in, fan_out: _uniform(math.sqrt(6 / fan_in)),
    "he_normal": lambda fan_in, fan_out: _truncated(math.sqrt(2 / fan_in)),
    "lecun_uniform": lambda fan_in, fan_out: _uniform(math.sqrt(3 / fan_in)),
    "lecun_normal": lambda fan_in, fan_out: _truncated(math.sqrt(1 / fan_in)),
    "orthogonal": lambda fan_in, fan_out: _orthogonal,
    "random_normal": lambda fan_in, fan_out: lambda t: nn.init.normal_(t, 0.0, 0.05),
    "random_uniform": lambda fan_in, fan_out: _uniform(0.05),
    "zeros": lambda fan_in, fan_out: nn.init.zeros_,
    "ones": lambda fan_in, fan_out: nn.init.ones_,
})


def initialize(weight: S.Weight) -> torch.Tensor:
    tensor = torch.empty(weight.shape)
    with torch.no_grad():
        TORCH.initializers[weight.initializer](*_fans(weight.shape))(tensor)
    return tensor


def initial_weights(layer: S.Layer, in_shape: S.Shape) -> dict[str, np.ndarray]:
    weights = {name: initialize(w).numpy() for name, w in layer.weights(in_shape).items()}
    if isinstance(layer, S.LSTM) and layer.unit_forget_bias:
        for direction in layer.directions:  # gates i, f, c, o: the forget gate's bias is 1
            weights[f"{direction}.bias"][layer.units:2 * layer.units] = 1.0
    return weights


# --- blocks ----------------------------------------------------------------------------------


class Block(nn.Module):
    """A spec layer. `logits=True` (last layer only) stops before the output activation."""

    activation_name: str | None = None

    def activate(self, net: torch.Tensor, logits: bool) -> torch.Tensor:
        if logits or self.activation_name is None:
            return net
        activated: torch.Tensor = TORCH.activations[self.activation_name](net)
        return activated

    def canonical(self) -> dict[str, torch.Tensor]:
        return {}

    def load_canonical(self, weights: dict[str, np.ndarray]) -> None:
        pass


def _parameter_key(name: str) -> str:
    return name.replace(".", ":")  # torch's parameter names hold no dot ("query.kernel")


class CanonicalBlock(Block):
    """Keeps its weights as parameters in the canonical layout itself."""

    def __init__(self, layer: S.Layer, in_shape: S.Shape):
        super().__init__()
        self.weight = nn.ParameterDict({
            _parameter_key(name): nn.Parameter(torch.from_numpy(value))
            for name, value in initial_weights(layer, in_shape).items()})

    def get(self, name: str) -> torch.Tensor | None:
        """The weight of that canonical name, if the layer has it (a bias may be off)."""
        key = _parameter_key(name)
        return self.weight[key] if key in self.weight else None

    def canonical(self) -> dict[str, torch.Tensor]:
        return {key.replace(":", "."): p.detach() for key, p in self.weight.items()}

    def load_canonical(self, weights: dict[str, np.ndarray]) -> None:
        with torch.no_grad():
            for key, p in self.weight.items():
                p.copy_(torch.from_numpy(weights[key.replace(":", ".")]))


def _radial(x: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    # x [..., f], centers [f, units] → Σᵢ (wᵢⱼ − xᵢ)² [..., units]
    return torch.square(x.unsqueeze(-1) - centers).sum(dim=-2)


def _log_abs(a: torch.Tensor) -> torch.Tensor:
    return torch.log(a.abs())


TORCH.combinations.add({
    "additive": lambda x, w: x.sum(dim=-1, keepdim=True),
    "linear": lambda x, w: F.linear(x, w["kernel"].T, w.get("bias")),
    "eqslopes": lambda x, w: (x @ w["kernel"]).unsqueeze(-1) + w.get("bias", 0.0),
    "xradial": lambda x, w: x.shape[-1] * _log_abs(w["altitudes"])
    - torch.square(w["widths"]) * _radial(x, w["centers"]),
    "ehradial": lambda x, w: -torch.square(w["widths"]) * _radial(x, w["centers"]),
    "evradial": lambda x, w: x.shape[-1] * _log_abs(w["widths"])
    - torch.square(w["widths"]) * _radial(x, w["centers"]),
    "ewradial": lambda x, w: x.shape[-1] * _log_abs(w["altitudes"])
    - torch.square(w["widths"]) * _radial(x, w["centers"]),
    "eqradial": lambda x, w: -torch.square(w["widths"]) * _radial(x, w["centers"]),
})


@TORCH.layers(S.Dense)
class DenseBlock(CanonicalBlock):
    def __init__(self, layer: S.Dense, in_shape: S.Shape):
        super().__init__(layer, in_shape)
        self.combine = TORCH.combinations[layer.combination]
        self.units = layer.units
        self.activation_name = layer.activation

    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:
        net = self.combine(x, dict(self.weight.items()))
        if net.shape[-1] != self.units:  # additive: one sum, the same for every unit
            net = net.expand(*net.shape[:-1], self.units)
        return self.activate(net, logits)


def _pad_argument(pads: list[tuple[int, int]]) -> list[int]:
    """F.pad's argument for (before, after) pads per spatial axis: last axis first."""
    return [p for pair in reversed(pads) for p in pair]


def _to_channels_first(x: torch.Tensor) -> torch.Tensor:
    return x.movedim(-1, 1)


def _to_channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.movedim(1, -1)


@TORCH.layers(S.Conv, ranks=(1, 2))
class ConvBlock(CanonicalBlock):
    def __init__(self, layer: S.Conv, in_shape: S.Shape):
        super().__init__(layer, in_shape)
        self.rank = layer.rank
        self.strides = layer._tuple(layer.strides, "strides")
        self.dilation = layer._tuple(layer.dilation, "dilation")
        window = layer._tuple(layer.kernel_size, "kernel_size")
        # Padded by the convolution itself where the padding is the same on both sides of each
        # axis (an odd window at stride 1, the usual case): a separate pad is one more copy each
        # way, a tenth of a small network's step.
        self.conv_padding: tuple[int, ...] | int = 0
        self.padding = None
        if layer.padding == "same":
            pads = S.same_padding(in_shape[:-1], window, self.strides, self.dilation)
            if all(before == after for before, after in pads):
                self.conv_padding = tuple(before for before, _ in pads)
            else:
                self.padding = _pad_argument(pads)
        self.conv = getattr(F, f"conv{self.rank}d")
        self.activation_name = layer.activation

    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:
        x = _to_channels_first(x)
        if self.padding:
            x = F.pad(x, self.padding)
        # canonical kernel [*window, in, filters] → torch [filters, in, *window]
        kernel = self.weight["kernel"].permute(self.rank + 1, self.rank, *range(self.rank))
        net = self.conv(x, kernel, self.weight.get("bias"), self.strides, self.conv_padding,
                        self.dilation)
        return self.activate(_to_channels_last(net), logits)


@TORCH.layers(S.ConvTranspose, ranks=(2,))
class ConvTransposeBlock(CanonicalBlock):
    def __init__(self, layer: S.ConvTranspose, in_shape: S.Shape):
        super().__init__(layer, in_shape)
        self.rank = layer.rank
        window = layer._tuple(layer.kernel_size, "kernel_size")
        self.strides = layer._tuple(layer.strides, "strides")
        out = layer.output_shape(in_shape)[:-1]
        # torch pads (crops) both ends alike; Keras's same crops the odd cell at the end, and
        # its valid with a window smaller than the strides extends the end: so the full
        # output, (n − 1)·s + k positions (extended by output_padding where Keras's is
        # longer), is sliced to Keras's.
        full = [(n - 1) * s + k for n, k, s in zip(in_shape[:-1], window, self.strides,
                                                   strict=True)]
        self.output_padding = tuple(max(o - f, 0) for o, f in zip(out, full, strict=True))
        starts = [max(f - o, 0) // 2 for o, f in zip(out, full, strict=True)]
        self.crop = tuple(slice(start, start + o) for start, o in zip(starts, out, strict=True))
        self.conv = getattr(F, f"conv_transpose{self.rank}d")
        self.activation_name = layer.activation

    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:
        # canonical kernel [*window, filters, in] → torch [in, filters, *window]
        kernel = self.weight["kernel"].permute(self.rank + 1, self.rank, *range(self.rank))
        net = self.conv(_to_channels_first(x), kernel, self.weight.get("bias"), self.strides,
                        0, self.output_padding)
        return self.activate(_to_channels_last(net[(..., *self.crop)]), logits)


@TORCH.layers(S.UpSample, ranks=(2,))
def _upsample(layer: S.UpSample, in_shape: S.Shape) -> Block:
    factors = layer._tuple(layer.size, "size")

    def repeat(block: Block, x: torch.Tensor) -> torch.Tensor:
        for axis, factor in enumerate(factors, start=1):  # [batch, *spatial, channels]
            x = x.repeat_interleave(factor, dim=axis)
        return x
    return Stateless(repeat)


class PoolBlock(Block):
    kind: str  # "max" or "avg", as in torch's F.max_pool1d, F.avg_pool2d, …

    def __init__(self, layer: S.Pool, in_shape: S.Shape):
        super().__init__()
        self.window, self.strides = layer.window()
        self.padding = (_pad_argument(S.same_padding(in_shape[:-1], self.window, self.strides,
                                                     (1,) * layer.rank))
                        if layer.padding == "same" else None)
        self.pool = getattr(F, f"{self.kind}_pool{layer.rank}d")


@TORCH.layers(S.MaxPool, ranks=(1, 2))
class MaxPoolBlock(PoolBlock):
    kind = "max"

    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:
        x = _to_channels_first(x)
        if self.padding:
            x = F.pad(x, self.padding, value=-math.inf)  # padding never wins a max
        return _to_channels_last(self.pool(x, self.window, self.strides))


@TORCH.layers(S.AvgPool, ranks=(1, 2))
class AvgPoolBlock(PoolBlock):
    kind = "avg"

    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:
        x = _to_channels_first(x)
        if not self.padding:
            return _to_channels_last(self.pool(x, self.window, self.strides))
        # Keras averages over the cells inside the input only: sum / count.
        ones = torch.ones_like(x[:1, :1])
        counts = self.pool(F.pad(ones, self.padding), self.window, self.strides)
        return _to_channels_last(self.pool(F.pad(x, self.padding), self.window, self.strides)
                                 / counts)


class GlobalPoolBlock(Block):
    """Reduces every axis but batch and channels, whatever the input's spatial rank."""

    reduce: Callable[..., torch.Tensor]

    def __init__(self, layer: S.GlobalPool, in_shape: S.Shape):
        super().__init__()
        self.axes = tuple(range(1, len(in_shape)))

    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:
        return self.reduce(x, dim=self.axes)


@TORCH.layers(S.GlobalMaxPool)
class GlobalMaxPoolBlock(GlobalPoolBlock):
    reduce = staticmethod(torch.amax)


@TORCH.layers(S.GlobalAvgPool)
class GlobalAvgPoolBlock(GlobalPoolBlock):
    reduce = staticmethod(torch.mean)


class Stateless(Block):
    """A weightless layer given by a function of the input (and training mode)."""

    def __init__(self, function: Callable[["Stateless", torch.Tensor], torch.Tensor]):
        super().__init__()
        self.function = function

    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:
        return self.function(self, x)


@TORCH.layers(S.BatchNorm)
class BatchNormBlock(Block):
    """Batch normalization on the last axis, with Keras's statistics (biased variance)."""

    moving_mean: torch.Tensor  # buffers
    moving_variance: torch.Tensor

    def __init__(self, layer: S.BatchNorm, in_shape: S.Shape):
        super().__init__()
        initial = initial_weights(layer, in_shape)
        self.gamma = nn.Parameter(torch.from_numpy(initial["gamma"]))
        self.beta = nn.Parameter(torch.from_numpy(initial["beta"]))
        self.register_buffer("moving_mean", torch.from_numpy(initial["moving_mean"]))
        self.register_buffer("moving_variance", torch.from_numpy(initial["moving_variance"]))
        self.momentum, self.epsilon = layer.momentum, layer.epsilon

    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:
        # [N, *spatial, C] → a [N, C, *spatial] view: torch's fused batch norm, on the channels
        # where torch expects them, without copying the input.
        channels_first = _to_channels_first(x)
        if not self.training:
            return _to_channels_last(F.batch_norm(
                channels_first, self.moving_mean, self.moving_variance, self.gamma, self.beta,
                False, 0.0, self.epsilon))
        moved = self.moving_variance.clone()  # torch moves this copy; the buffer is ours
        out = F.batch_norm(channels_first, self.moving_mean, moved, self.gamma, self.beta, True,
                           1 - self.momentum, self.epsilon)
        # torch moved the variance towards the unbiased batch variance (n/(n−1) times the
        # biased one); Keras moves it towards the biased one. With m the momentum, Keras's
        # m·v + (1−m)·biased is (n−1)/n · moved + m/n · v.
        n = x.numel() // x.shape[-1]
        with torch.no_grad():
            self.moving_variance.mul_(self.momentum / n).add_(moved, alpha=(n - 1) / n)
        return _to_channels_last(out)

    def canonical(self) -> dict[str, torch.Tensor]:
        return {"gamma": self.gamma.detach(), "beta": self.beta.detach(),
                "moving_mean": self.moving_mean, "moving_variance": self.moving_variance}

    def load_canonical(self, weights: dict[str, np.ndarray]) -> None:
        with torch.no_grad():
            for name in ("gamma", "beta", "moving_mean", "moving_variance"):
                getattr(self, name).copy_(torch.from_numpy(weights[name]))


@TORCH.layers(S.LayerNorm)
class LayerNormBlock(CanonicalBlock):
    def __init__(self, layer: S.LayerNorm, in_shape: S.Shape):
        super().__init__(layer, in_shape)
        self.epsilon = layer.epsilon

    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.weight["gamma"], self.weight["beta"],
                            self.epsilon)


def _reorder(matrix: torch.Tensor, order: list[int], units: int) -> torch.Tensor:
    return torch.cat([matrix[..., g * units:(g + 1) * units] for g in order], dim=-1)


class RecurrentBlock(Block):
    """torch's fused RNN/LSTM/GRU, mapped to Keras's kernel, recurrent kernel and bias."""

    module: type[nn.RNN] | type[nn.LSTM] | type[nn.GRU]
    gate_order: list[int]  # torch's gate blocks, as indices into Keras's
    # Whether the canonical bias holds the input and the recurrent bias ([2, gates·units]);
    # otherwise there is one bias per gate and torch's recurrent bias stays at zero.
    recurrent_bias = False

    def __init__(self, layer: S.Recurrent, in_shape: S.Shape):
        super().__init__()
        self.layer = layer
        self.rnn = self.module(in_shape[-1], layer.units, batch_first=True,
                               bidirectional=layer.bidirectional)
        if not self.recurrent_bias:
            for suffix in self._suffixes():
                getattr(self.rnn, f"bias_hh_l0{suffix}").requires_grad_(False)
        self.load_canonical(initial_weights(layer, in_shape))

    def _suffixes(self) -> list[str]:
        return ["", "_reverse"][:len(self.layer.directions)]

    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:
        output: torch.Tensor
        output, state = self.rnn(x)
        summed = self.layer.merge_mode == "sum"
        if self.layer.return_sequences:  # [batch, steps, directions·units]
            return output[..., :self.layer.units] + output[..., self.layer.units:] if summed \
                else output
        final = state[0] if isinstance(state, tuple) else state  # [directions, batch, units]
        return final.sum(dim=0) if summed else torch.cat(list(final), dim=-1)

    def canonical(self) -> dict[str, torch.Tensor]:
        order, units = self.gate_order, self.layer.units
        inverse = [order.index(g) for g in range(len(order))]
        weights = {}
        for direction, suffix in zip(self.layer.directions, self._suffixes(), strict=True):
            def get(name: str, s: str = suffix) -> torch.Tensor:
                parameter: torch.Tensor = getattr(self.rnn, f"{name}_l0{s}")
                return parameter.detach()

            weights[f"{direction}.kernel"] = _reorder(get("weight_ih").T, inverse, units)
            weights[f"{direction}.recurrent_kernel"] = _reorder(get("weight_hh").T, inverse,
                                                                units)
            bias_ih, bias_hh = (_reorder(get(n), inverse, units) for n in ("bias_ih", "bias_hh"))
            weights[f"{direction}.bias"] = (torch.stack([bias_ih, bias_hh])
                                            if self.recurrent_bias else bias_ih)
        return weights

    def load_canonical(self, weights: dict[str, np.ndarray]) -> None:
        order, units = self.gate_order, self.layer.units
        with torch.no_grad():
            for direction, suffix in zip(self.layer.directions, self._suffixes(), strict=True):
                def put(name: str, value: np.ndarray, s: str = suffix) -> None:
                    # Reorder the gate blocks on the canonical (last) axis, then transpose
                    # matrices to torch's [gates·units, inputs].
                    tensor = _reorder(torch.from_numpy(value), order, units)
                    getattr(self.rnn, f"{name}_l0{s}").copy_(tensor.T if tensor.dim() == 2
                                                              else tensor)

                put("weight_ih", weights[f"{direction}.kernel"])
                put("weight_hh", weights[f"{direction}.recurrent_kernel"])
                bias = weights[f"{direction}.bias"]
                put("bias_ih", bias[0] if self.recurrent_bias else bias)
                put("bias_hh", bias[1] if self.recurrent_bias else np.zeros_like(bias))


@TORCH.layers(S.SimpleRNN)
class SimpleRNNBlock(RecurrentBlock):
    module, gate_order = nn.RNN, [0]


@TORCH.layers(S.LSTM)
class LSTMBlock(RecurrentBlock):
    module, gate_order = nn.LSTM, [0, 1, 2, 3]  # i, f, c (g), o in both


@TORCH.layers(S.GRU)
class GRUBlock(RecurrentBlock):
    # Keras's z, r, h are torch's r, z, n.
    module, gate_order, recurrent_bias = nn.GRU, [1, 0, 2], True


@TORCH.layers(S.Embedding)
class EmbeddingBlock(CanonicalBlock):
    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:
        return F.embedding(x.long(), self.weight["embeddings"])


@TORCH.layers(S.Activation)
class ActivationBlock(Block):
    def __init__(self, layer: S.Activation, in_shape: S.Shape):
        super().__init__()
        self.activation_name = layer.function

    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:
        return self.activate(x, logits)


@TORCH.layers(S.Flatten)
def _flatten(layer: S.Flatten, in_shape: S.Shape) -> Block:
    return Stateless(lambda block, x: x.flatten(1))


@TORCH.layers(S.Reshape)
def _reshape(layer: S.Reshape, in_shape: S.Shape) -> Block:
    return Stateless(lambda block, x: x.reshape(x.shape[0], *layer.target_shape))


@TORCH.layers(S.Dropout)
def _dropout(layer: S.Dropout, in_shape: S.Shape) -> Block:
    return Stateless(lambda block, x: F.dropout(x, layer.rate, block.training))


@TORCH.layers(S.RepeatVector)
def _repeat_vector(layer: S.RepeatVector, in_shape: S.Shape) -> Block:
    # [batch, features] → [batch, n, features], a view
    return Stateless(lambda block, x: x.unsqueeze(1).expand(-1, layer.n, -1))


@TORCH.layers(S.PositionalEmbedding)
class PositionalEmbeddingBlock(CanonicalBlock):
    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:
        positions: torch.Tensor = self.weight["embeddings"]  # [steps, features]
        return x + positions  # [batch, steps, features]


@TORCH.layers(S.MultiHeadAttention)
class MultiHeadAttentionBlock(CanonicalBlock):
    """Keras's MultiHeadAttention on its canonical weights, through torch's fused attention."""

    def __init__(self, layer: S.MultiHeadAttention, in_shape: S.Shape):
        super().__init__(layer, in_shape)
        self.causal, self.dropout = layer.causal, layer.dropout

    def _weight(self, name: str) -> torch.Tensor:
        weight = self.get(name)
        assert weight is not None  # every kernel is
        return weight

    def _project(self, x: torch.Tensor, name: str) -> torch.Tensor:
        # [batch, steps, features] · [features, heads, key_dim] → [batch, heads, steps, key_dim]
        projected = torch.einsum("btf,fhk->bthk", x, self._weight(f"{name}.kernel"))
        bias = self.get(f"{name}.bias")
        return (projected if bias is None else projected + bias).transpose(1, 2)

    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:
        attended = F.scaled_dot_product_attention(
            self._project(x, "query"), self._project(x, "key"), self._project(x, "value"),
            dropout_p=self.dropout if self.training else 0.0, is_causal=self.causal)
        # [batch, heads, steps, key_dim] · [heads, key_dim, features] → [batch, steps, features]
        out = torch.einsum("bhtk,hkf->btf", attended, self._weight("attention_output.kernel"))
        bias = self.get("attention_output.bias")
        return out if bias is None else out + bias


def build_blocks(layers: list[S.Layer], shape: S.Shape) -> list[Block]:
    """The block of each layer, each given its input's shape."""
    blocks = []
    for layer in layers:
        blocks.append(TORCH.layers[layer](layer, shape))
        shape = layer.output_shape(shape)
    return blocks


class NestedBlock(Block):
    """A block of layers inside one spec layer; their weights named by their places."""

    def __init__(self, layer: S.Nested, in_shape: S.Shape):
        super().__init__()
        members = layer.members()
        self.prefixes = [member.prefix for member in members]
        self.blocks = nn.ModuleList(build_blocks([member.layer for member in members],
                                                 layer.inner_shape(in_shape)))

    def run(self, x: torch.Tensor, last_logits: bool) -> torch.Tensor:
        last = len(self.blocks) - 1
        for index, block in enumerate(self.blocks):
            x = block(x, logits=last_logits and index == last)
        return x

    def _named_blocks(self) -> Iterator[tuple[str, Block]]:
        for prefix, block in zip(self.prefixes, self.blocks, strict=True):
            assert isinstance(block, Block)  # as __init__ built them
            yield prefix, block

    def canonical(self) -> dict[str, torch.Tensor]:
        return {f"{prefix}{name}": tensor for prefix, block in self._named_blocks()
                for name, tensor in block.canonical().items()}

    def load_canonical(self, weights: dict[str, np.ndarray]) -> None:
        for prefix, block in self._named_blocks():
            block.load_canonical({name[len(prefix):]: value for name, value in weights.items()
                                  if name.startswith(prefix)})


@TORCH.layers(S.TimeDistributed)
class TimeDistributedBlock(NestedBlock):
    def __init__(self, layer: S.TimeDistributed, in_shape: S.Shape):
        super().__init__(layer, in_shape)
        self.steps = in_shape[0]
        self.activation_name = layer.output_activation  # the last inner layer's

    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:
        # [batch, steps, *step] → [batch·steps, *step]: the steps folded into the batch
        out = self.run(x.reshape(-1, *x.shape[2:]), last_logits=True)
        return self.activate(out.reshape(-1, self.steps, *out.shape[1:]), logits)


@TORCH.layers(S.Residual)
class ResidualBlock(NestedBlock):
    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:
        return x + self.run(x, last_logits=False)


class SpecModule(nn.Module):
    def __init__(self, model_spec: S.ModelSpec):
        super().__init__()
        self.blocks = nn.ModuleList(build_blocks(list(model_spec.layers),
                                                 tuple(model_spec.input.shape)))

    def layer_blocks(self) -> Iterator[Block]:
        """The block of each spec layer, in order."""
        for block in self.blocks:
            assert isinstance(block, Block)  # as __init__ built them; ModuleList forgets types
            yield block

    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:
        last = len(self.blocks) - 1
        for index, block in enumerate(self.blocks):
            x = block(x, logits=logits and index == last)
        return x
