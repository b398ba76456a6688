"""A job spec as a standalone script in plain PyTorch or plain Keras 3: the same network, data,
split, preprocessing, optimizer, loss, epochs, batch size and seed, for a person to read and run.

Text only: no framework is imported here. Each layer type has one code writer per framework,
registered by spec class in a `ml.registry.LayerRegistry` (a class is written by the writer of
its nearest base); a layer type without one is refused, naming the layer.
"""

import json
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ml import catalog
from ml import spec as S
from ml.datasets import (
    DIGIT_SEQUENCE_STEPS,
    FORECAST_STEPS,
    REVERSE_STEPS,
    REVERSE_VOCABULARY,
    SEQUENCES,
    SINE_WINDOW,
    TEST_FRACTION,
)
from ml.errors import SpecError, SpecIssue
from ml.registry import LayerRegistry, MissingBuilder
from ml.spec.layers import same_padding

FRAMEWORKS = ("pytorch", "tensorflow")
TORCH_CODE = LayerRegistry("pytorch script")
KERAS_CODE = LayerRegistry("keras script")
WRITERS = {"pytorch": TORCH_CODE, "tensorflow": KERAS_CODE}

Shape = tuple[int, ...]


@dataclass
class Script:
    """What the layer writers add to: lines of the model, and helper definitions it needs."""

    framework: str
    helpers: dict[str, str] = field(default_factory=dict)  # name → its definition, once each
    lines: list[str] = field(default_factory=list)
    layout: str = "last"  # torch only: "first" after a ChannelsFirst (convolutions' layout)

    def helper(self, name: str, definition: str) -> str:
        self.helpers.setdefault(name, definition)
        return name

    def add(self, code: str, comment: str = "") -> None:
        self.lines.append(f"{code},  # {comment}" if comment else f"{code},")


class Refused(ValueError):
    """The layer cannot be written in this framework as Capas trains it; says why."""


# --- activations ------------------------------------------------------------------------------

# The frameworks' own activations; the others are written out in the script from the catalog's
# formula: torch expression, Keras expression, of the net input g.
TORCH_ACTIVATIONS = {
    "identity": "nn.Identity()", "relu": "nn.ReLU()", "tanh": "nn.Tanh()",
    "logistic": "nn.Sigmoid()", "elu": "nn.ELU()", "selu": "nn.SELU()", "gelu": "nn.GELU()",
    "softplus": "nn.Softplus()", "silu": "nn.SiLU()",
    "leaky_relu": f"nn.LeakyReLU({catalog.LEAKY_RELU_SLOPE})",
}
KERAS_ACTIVATIONS = {
    "identity": "linear", "relu": "relu", "tanh": "tanh", "logistic": "sigmoid",
    "softmax": "softmax", "elu": "elu", "selu": "selu", "softplus": "softplus", "silu": "silu",
    "exponential": "exponential",
}
WRITTEN_OUT = {  # name: (torch of g, keras of g)
    "exponential": ("torch.exp(g)", "ops.exp(g)"),
    "reciprocal": ("1 / g", "1 / g"),
    "square": ("g * g", "g * g"),
    "gauss": ("torch.exp(-g * g)", "ops.exp(-g * g)"),
    "sine": ("torch.sin(g)", "ops.sin(g)"),
    "cosine": ("torch.cos(g)", "ops.cos(g)"),
    "elliott": ("g / (1 + g.abs())", "g / (1 + ops.abs(g))"),
    "arctan": ("2 / math.pi * torch.atan(g)", "2 / math.pi * ops.arctan(g)"),
    # Keras's leaky_relu slopes 0.2 by default; Capas's slopes as torch's.
    "leaky_relu": ("", f"ops.leaky_relu(g, negative_slope={catalog.LEAKY_RELU_SLOPE})"),
    # Keras's gelu defaults to the tanh approximation; Capas's is the exact one.
    "gelu": ("", "ops.gelu(g, approximate=False)"),
}


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def torch_activation(script: Script, name: str) -> str:
    """A module applying the activation `name` (the catalog's name)."""
    if name == "softmax":  # over the units: the last axis, or the channels when first
        return f"nn.Softmax(dim={1 if script.layout == 'first' else -1})"
    if name in TORCH_ACTIVATIONS:
        return TORCH_ACTIVATIONS[name]
    formula, expression = catalog.ACTIVATIONS[name].formula, WRITTEN_OUT[name][0]
    return script.helper(_camel(name), f'''class {_camel(name)}(nn.Module):
    """{formula}: Capas's {name} activation, which torch lacks."""

    def forward(self, g):
        return {expression}
''') + "()"


def keras_activation(script: Script, name: str) -> str:
    """The `activation=` argument for `name`: a Keras name, or a function written out."""
    if name in KERAS_ACTIVATIONS and name not in WRITTEN_OUT:
        return json.dumps(KERAS_ACTIVATIONS[name])
    formula, expression = catalog.ACTIVATIONS[name].formula, WRITTEN_OUT[name][1]
    return script.helper(name, f'''def {name}(g):
    """{formula}: Capas's {name} activation, as Capas computes it."""
    return {expression}
''')


# --- initializers: torch's defaults differ from Keras's, so the script sets them ----------------

TORCH_INITIALIZERS = {
    "glorot_uniform": "nn.init.xavier_uniform_",
    "glorot_normal": "nn.init.xavier_normal_",
    "he_uniform": "partial(nn.init.kaiming_uniform_, nonlinearity='relu')",
    "he_normal": "partial(nn.init.kaiming_normal_, nonlinearity='relu')",
    "lecun_uniform": "partial(nn.init.kaiming_uniform_, nonlinearity='linear')",
    "lecun_normal": "partial(nn.init.kaiming_normal_, nonlinearity='linear')",
    "orthogonal": "nn.init.orthogonal_",
    "random_normal": "partial(nn.init.normal_, std=0.05)",
    "random_uniform": "partial(nn.init.uniform_, a=-0.05, b=0.05)",
    "zeros": "nn.init.zeros_",
    "ones": "nn.init.ones_",
}

INITIALIZED = '''def initialized(layer, kernel_init, bias_init):
    """The layer with Keras's initial weights (torch's own defaults differ)."""
    kernel_init(layer.weight)
    if layer.bias is not None:
        bias_init(layer.bias)
    return layer
'''


def torch_initialized(script: Script, module: str, layer: Any) -> str:
    script.helper("initialized", INITIALIZED)
    return (f"initialized({module}, {TORCH_INITIALIZERS[layer.kernel_initializer]}, "
            f"{TORCH_INITIALIZERS[layer.bias_initializer]})")


# --- the layer writers: one per spec class and framework --------------------------------------

LayoutWriter = Callable[[Script, Any, Shape], None]

CHANNELS_FIRST = '''class ChannelsFirst(nn.Module):
    """[batch, *spatial, channels] → [batch, channels, *spatial]: Capas's shapes are channels
    last (as Keras's), torch's convolutions read the channels first."""

    def forward(self, x):
        return x.movedim(-1, 1)
'''
CHANNELS_LAST = '''class ChannelsLast(nn.Module):
    """[batch, channels, *spatial] → [batch, *spatial, channels]: back to Capas's layout, so
    that a flatten orders the values as Keras does."""

    def forward(self, x):
        return x.movedim(1, -1)
'''


def torch_layout(script: Script, wanted: str) -> None:
    if script.layout != wanted:
        name = "ChannelsFirst" if wanted == "first" else "ChannelsLast"
        script.add(script.helper(name, CHANNELS_FIRST if wanted == "first" else CHANNELS_LAST)
                   + "()")
        script.layout = wanted


def _pair(value: int | list[int], rank: int) -> Shape:
    return (value,) * rank if isinstance(value, int) else tuple(value)


def _shape(shape: Shape) -> str:
    return f"[{', '.join(map(str, shape))}]"


# Radial combinations: the weights each has beyond its centres (name, shape), and its net input
# g from the squared distances d = Σᵢ (wᵢⱼ − xᵢ)² [..., units] and the fan-in f.
RADIAL = {
    "xradial": ((("widths", "units"), ("altitudes", "units")), "f * log|altitudes| - widths² d"),
    "ehradial": ((("widths", "units"),), "-widths² d"),
    "evradial": ((("widths", "units"),), "f * log|widths| - widths² d"),
    "ewradial": ((("widths", "1"), ("altitudes", "units")), "f * log|altitudes| - widths² d"),
    "eqradial": ((("widths", "1"),), "-widths² d"),
}
# What a 1-D weight (a width or altitude per unit) may start from in a script: the others
# compute fans that a vector has not.
VECTOR_INITIALIZERS = ("zeros", "ones", "random_normal", "random_uniform")


def _radial_net(combination: str, framework: str) -> str:
    """The net input as code: `d` the squared distances, `f` the fan-in, `self.` weights."""
    net = RADIAL[combination][1]
    if framework == "pytorch":
        return (net.replace("log|altitudes|", "torch.log(self.altitudes.abs())")
                .replace("log|widths|", "torch.log(self.widths.abs())")
                .replace("widths² d", "self.widths.square() * d"))
    return (net.replace("log|altitudes|", "ops.log(ops.abs(self.altitudes))")
            .replace("log|widths|", "ops.log(ops.abs(self.widths))")
            .replace("widths² d", "ops.square(self.widths) * d"))


SUMS = {  # the combinations that sum the inputs: torch's module, Keras's layer
    "additive": ('''class AdditiveDense(nn.Module):
    """g = Σᵢ xᵢ, then the activation: Capas's additive combination (no weights: every unit's
    net input is the same sum)."""

    def __init__(self, fan_in, units, kernel_init, bias_init, bias):
        super().__init__()
        self.units = units

    def forward(self, x):
        return x.sum(dim=-1, keepdim=True).expand(*x.shape[:-1], self.units)
''', '''class AdditiveDense(layers.Layer):
    """g = Σᵢ xᵢ, then the activation: Capas's additive combination (no weights: every unit's
    net input is the same sum)."""

    def __init__(self, units, activation, use_bias, kernel_initializer, bias_initializer):
        super().__init__()
        self.units, self.activation = units, keras.activations.get(activation)

    def call(self, x):
        return self.activation(ops.repeat(ops.sum(x, axis=-1, keepdims=True), self.units, -1))
'''),
    "eqslopes": ('''class EqslopesDense(nn.Module):
    """g = bⱼ + Σᵢ wᵢ xᵢ, then the activation: Capas's eqslopes combination (one weight per
    input, shared by every unit, and a bias per unit)."""

    def __init__(self, fan_in, units, kernel_init, bias_init, bias):
        super().__init__()
        self.units = units
        self.kernel = nn.Parameter(torch.empty(fan_in))
        kernel_init(self.kernel.unsqueeze(0))  # torch's fan-in of [1, fan_in]: Keras's
        self.bias = nn.Parameter(torch.empty(units)) if bias else None
        if bias:
            bias_init(self.bias)

    def forward(self, x):
        net = (x @ self.kernel).unsqueeze(-1).expand(*x.shape[:-1], self.units)
        return net if self.bias is None else net + self.bias
''', '''class EqslopesDense(layers.Layer):
    """g = bⱼ + Σᵢ wᵢ xᵢ, then the activation: Capas's eqslopes combination (one weight per
    input, shared by every unit, and a bias per unit)."""

    def __init__(self, units, activation, use_bias, kernel_initializer, bias_initializer):
        super().__init__()
        self.units, self.activation = units, keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1],),
                                      initializer=self.kernel_initializer)
        if self.use_bias:
            self.bias = self.add_weight(shape=(self.units,), initializer=self.bias_initializer)

    def call(self, x):
        net = ops.repeat(ops.expand_dims(ops.matmul(x, self.kernel), -1), self.units, -1)
        return self.activation(net + self.bias if self.use_bias else net)
'''),
}
# A vector's fans, as Keras computes them, are its length both: Glorot's draws are LeCun's.
VECTOR_KERNELS = {"glorot_uniform": "lecun_uniform", "glorot_normal": "lecun_normal"}


def _check_sum(layer: S.Dense) -> None:
    if layer.combination == "eqslopes" and layer.kernel_initializer == "orthogonal":
        raise Refused("an orthogonal draw needs a matrix; eqslopes's weights are a vector")


def _torch_sum(script: Script, layer: S.Dense, shape: Shape) -> None:
    _check_sum(layer)
    kernel = VECTOR_KERNELS.get(layer.kernel_initializer, layer.kernel_initializer)
    name = script.helper(f"{_camel(layer.combination)}Dense", SUMS[layer.combination][0])
    script.add(f"{name}({shape[-1]}, {layer.units}, {TORCH_INITIALIZERS[kernel]}, "
               f"{TORCH_INITIALIZERS[layer.bias_initializer]}, bias={layer.use_bias})")


def _radial_weights(layer: S.Dense) -> tuple[tuple[str, str], ...]:
    if layer.combination not in RADIAL:
        raise Refused(f"the {layer.combination} combination is not written as a script yet")
    extra = RADIAL[layer.combination][0]
    for name, _ in extra:
        initializer = getattr(layer, f"{name[:-1]}_initializer")
        if initializer not in VECTOR_INITIALIZERS:
            raise Refused(f"its {name} start from {initializer}, which a script draws only for "
                          "a matrix")
    return extra


def _fan_in(layer: S.Dense) -> str:
    """The line that names the fan-in f, where the combination uses it."""
    uses_fan_in = "f *" in RADIAL[layer.combination][1]
    return "        f = x.shape[-1]  # the fan-in\n" if uses_fan_in else ""


def _radial_doc(layer: S.Dense) -> str:
    weights = ", ".join(["centres w", *(f"{'widths b' if name == 'widths' else 'altitudes a'}"
                                        for name, _ in RADIAL[layer.combination][0])])
    return (f"g = {catalog.COMBINATIONS[layer.combination].formula}, then the activation:\n"
            f"    Capas's {layer.combination} combination ({weights}), which the framework lacks")


@TORCH_CODE(S.Dense)
def _torch_dense(script: Script, layer: S.Dense, shape: Shape) -> None:
    torch_layout(script, "last")
    if layer.combination in SUMS:
        _torch_sum(script, layer, shape)
    elif layer.combination == "linear":
        linear = f"nn.Linear({shape[-1]}, {layer.units}, bias={layer.use_bias})"
        script.add(torch_initialized(script, linear, layer))
    else:
        extra = _radial_weights(layer)
        name = f"{_camel(layer.combination)}Dense"
        weights = "\n".join(
            f"        self.{weight} = nn.Parameter(torch.empty({size}))\n"
            f"        {weight[:-1]}_init(self.{weight})" for weight, size in extra)
        inits = "".join(f", {weight[:-1]}_init" for weight, _ in extra)
        script.helper(name, f'''class {name}(nn.Module):
    """{_radial_doc(layer)}."""

    def __init__(self, fan_in, units, center_init{inits}):
        super().__init__()
        self.centers = nn.Parameter(torch.empty(fan_in, units))
        # torch reads the fans from [units, fan_in], Keras from [fan_in, units]: the same ones.
        center_init(self.centers.T)
{weights}

    def forward(self, x):
        d = (x.unsqueeze(-1) - self.centers).square().sum(dim=-2)  # Σᵢ (wᵢⱼ − xᵢ)²: [..., units]
{_fan_in(layer)}        return {_radial_net(layer.combination, "pytorch")}
''')
        arguments = "".join(f", {TORCH_INITIALIZERS[getattr(layer, weight[:-1] + '_initializer')]}"
                            for weight, _ in extra)
        script.add(f"{name}({shape[-1]}, {layer.units}, "
                   f"{TORCH_INITIALIZERS[layer.kernel_initializer]}{arguments})")
    _torch_activation(script, layer.activation)


def _torch_activation(script: Script, name: str) -> None:
    if name != "identity":
        script.add(torch_activation(script, name))


@TORCH_CODE(S.Conv, ranks=(1, 2))
def _torch_conv(script: Script, layer: S.Conv, shape: Shape) -> None:
    torch_layout(script, "first")
    rank = layer.rank
    strides = _pair(layer.strides, rank)
    padding = f'"{layer.padding}"'
    if layer.padding == "same" and max(strides) > 1:
        # torch's "same" needs strides 1: pad as Keras does, the odd cell after.
        pads = same_padding(shape[:-1], _pair(layer.kernel_size, rank), strides,
                            _pair(layer.dilation, rank))
        last_axis_first = tuple(pad for axis in reversed(pads) for pad in axis)
        script.add(f"nn.ZeroPad{rank}d({last_axis_first})", "Keras's 'same' padding")
        padding = "0"
    conv = (f"nn.Conv{rank}d({shape[-1]}, {layer.filters}, "
            f"kernel_size={_pair(layer.kernel_size, rank)}, stride={strides}, "
            f"padding={padding}, dilation={_pair(layer.dilation, rank)}, bias={layer.use_bias})")
    script.add(torch_initialized(script, conv, layer))
    _torch_activation(script, layer.activation)


SAME_POOL = '''class SamePool(nn.Module):
    """Keras's 'same' pooling, which torch's lacks: the input padded (the odd cell after) so
    that each axis of n cells gives ⌈n / strides⌉; a maximum never picks the padding, and an
    average counts the cells inside the input only."""

    def __init__(self, pool, pads):  # pads: F.pad's order, the last axis first
        super().__init__()
        self.pool, self.pads = pool, pads

    def forward(self, x):
        if isinstance(self.pool, (nn.MaxPool1d, nn.MaxPool2d)):
            return self.pool(nn.functional.pad(x, self.pads, value=float("-inf")))
        inside = nn.functional.pad(torch.ones_like(x[:1, :1]), self.pads)  # 1 inside, 0 out
        return self.pool(nn.functional.pad(x, self.pads)) / self.pool(inside)
'''


@TORCH_CODE(S.Pool, ranks=(1, 2))
def _torch_pool(script: Script, layer: S.Pool, shape: Shape) -> None:
    torch_layout(script, "first")
    window, strides = layer.window()
    kind = "Max" if isinstance(layer, S.MaxPool) else "Avg"
    pool = f"nn.{kind}Pool{layer.rank}d(kernel_size={window}, stride={strides})"
    if layer.padding == "same":
        pads = same_padding(shape[:-1], window, strides, (1,) * layer.rank)
        last_axis_first = tuple(pad for axis in reversed(pads) for pad in axis)
        pool = f"{script.helper('SamePool', SAME_POOL)}({pool}, pads={last_axis_first})"
    script.add(pool)


GLOBAL_POOL = '''class Global{kind}Pool(nn.Module):
    """The {kind_lower} over every axis but the (last) channels: [batch, ..., channels] →
    [batch, channels]."""

    def forward(self, x):
        return x.flatten(1, -2).{method}(dim=1){index}
'''


@TORCH_CODE(S.GlobalPool)
def _torch_global_pool(script: Script, layer: S.GlobalPool, shape: Shape) -> None:
    torch_layout(script, "last")
    is_max = isinstance(layer, S.GlobalMaxPool)
    kind = "Max" if is_max else "Avg"
    definition = GLOBAL_POOL.format(kind=kind, kind_lower="maximum" if is_max else "mean",
                                    method="max" if is_max else "mean",
                                    index=".values" if is_max else "")
    script.add(script.helper(f"Global{kind}Pool", definition) + "()")


@TORCH_CODE(S.Flatten)
def _torch_flatten(script: Script, layer: S.Flatten, shape: Shape) -> None:
    torch_layout(script, "last")
    script.add("nn.Flatten()")


RESHAPE = '''class Reshape(nn.Module):
    """The same values in another shape (each sample's, the batch axis kept)."""

    def __init__(self, *shape):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return x.reshape(len(x), *self.shape)
'''


@TORCH_CODE(S.Reshape)
def _torch_reshape(script: Script, layer: S.Reshape, shape: Shape) -> None:
    torch_layout(script, "last")
    script.add(script.helper("Reshape", RESHAPE) + f"({', '.join(map(str, layer.target_shape))})")


@TORCH_CODE(S.Dropout)
def _torch_dropout(script: Script, layer: S.Dropout, shape: Shape) -> None:
    script.add(f"nn.Dropout({layer.rate})")


@TORCH_CODE(S.BatchNorm)
def _torch_batchnorm(script: Script, layer: S.BatchNorm, shape: Shape) -> None:
    # torch normalizes axis 1: the channels of an image or sequence must come first.
    torch_layout(script, "first" if len(shape) > 1 else "last")
    rank = 2 if len(shape) == 3 else 1
    script.add(f"nn.BatchNorm{rank}d({shape[-1]}, eps={layer.epsilon}, "
               f"momentum={round(1 - layer.momentum, 10)})",
               f"torch's momentum is 1 − Keras's {layer.momentum}")


@TORCH_CODE(S.LayerNorm)
def _torch_layernorm(script: Script, layer: S.LayerNorm, shape: Shape) -> None:
    torch_layout(script, "last")
    script.add(f"nn.LayerNorm({shape[-1]}, eps={layer.epsilon})")


@TORCH_CODE(S.Activation)
def _torch_activation_layer(script: Script, layer: S.Activation, shape: Shape) -> None:
    torch_layout(script, "last")
    script.add(torch_activation(script, layer.function))


@TORCH_CODE(S.UpSample, ranks=(2,))
def _torch_upsample(script: Script, layer: S.UpSample, shape: Shape) -> None:
    torch_layout(script, "first")
    script.add(f"nn.Upsample(scale_factor={_pair(layer.size, layer.rank)}, mode=\"nearest\")")


REPEAT_VECTOR = '''class RepeatVector(nn.Module):
    """[batch, features] → [batch, n, features]: the vector at every one of n time steps."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def forward(self, x):
        return x.unsqueeze(1).expand(-1, self.n, -1)
'''


@TORCH_CODE(S.RepeatVector)
def _torch_repeat_vector(script: Script, layer: S.RepeatVector, shape: Shape) -> None:
    torch_layout(script, "last")
    script.add(script.helper("RepeatVector", REPEAT_VECTOR) + f"({layer.n})")


EMBEDDING = '''class Embedding(nn.Embedding):
    """Ids → vectors: [batch, ...] → [batch, ..., output_dim]. The ids come as the float
    features of the dataset; torch looks them up as integers."""

    def __init__(self, input_dim, output_dim, init):
        super().__init__(input_dim, output_dim)
        init(self.weight.T)  # torch reads the fans from [output_dim, input_dim], as Keras

    def forward(self, x):
        return super().forward(x.long())
'''


@TORCH_CODE(S.Embedding)
def _torch_embedding(script: Script, layer: S.Embedding, shape: Shape) -> None:
    torch_layout(script, "last")
    script.add(script.helper("Embedding", EMBEDDING) + f"({layer.input_dim}, {layer.output_dim}, "
               f"{TORCH_INITIALIZERS[layer.embeddings_initializer]})")


RECURRENT = '''class Recurrent(nn.Module):
    """A torch recurrent layer answering as Keras's: the last state, or the state at every
    step ([batch, steps, units]); a bidirectional one joins the forward state after the last
    step with the backward state after the first (it reads the sequence backwards)."""

    def __init__(self, rnn, return_sequences, merge_mode, kernel_init, recurrent_init,
                 bias_init, forget_bias=False):
        super().__init__()
        self.rnn, self.return_sequences, self.merge_mode = rnn, return_sequences, merge_mode
        units = rnn.hidden_size
        for name, weight in rnn.named_parameters():
            if name.startswith("weight_ih"):
                kernel_init(weight)  # [gates·units, features]: Keras's fans, transposed
            elif name.startswith("weight_hh"):
                recurrent_init(weight)
            elif name.startswith("bias_ih"):
                bias_init(weight)
                if forget_bias:  # Keras's unit_forget_bias: the cell remembers from the start
                    nn.init.ones_(weight[units:2 * units])
            else:  # torch's second bias (bias_hh): Keras's LSTM and SimpleRNN have one
                nn.init.zeros_(weight)

    def forward(self, x):  # x: [batch, steps, features]
        outputs, _ = self.rnn(x)  # [batch, steps, directions·units]
        if not self.rnn.bidirectional:
            return outputs if self.return_sequences else outputs[:, -1]
        forward, backward = outputs.chunk(2, dim=-1)
        if not self.return_sequences:
            forward, backward = forward[:, -1], backward[:, 0]
        if self.merge_mode == "sum":
            return forward + backward
        return torch.cat([forward, backward], dim=-1)
'''
TORCH_RNNS = {"simple_rnn": "nn.RNN", "lstm": "nn.LSTM", "gru": "nn.GRU"}


@TORCH_CODE(S.Recurrent)
def _torch_recurrent(script: Script, layer: S.Recurrent, shape: Shape) -> None:
    torch_layout(script, "last")
    rnn = (f"{TORCH_RNNS[layer.type]}({shape[-1]}, {layer.units}, batch_first=True, "
           f"bidirectional={layer.bidirectional})")
    forget = ", forget_bias=True" if getattr(layer, "unit_forget_bias", False) else ""
    script.add(script.helper("Recurrent", RECURRENT)
               + f"({rnn}, return_sequences={layer.return_sequences}, "
               f"merge_mode=\"{layer.merge_mode}\", "
               f"kernel_init={TORCH_INITIALIZERS[layer.kernel_initializer]}, "
               f"recurrent_init={TORCH_INITIALIZERS[layer.recurrent_initializer]}, "
               f"bias_init={TORCH_INITIALIZERS[layer.bias_initializer]}{forget})")


CROP_TO = '''class CropTo(nn.Module):
    """Keeps the first cells of each spatial axis: [batch, channels, *spatial] → [batch,
    channels, *size] (Keras crops the odd cell of a transposed convolution at the end)."""

    def __init__(self, *size):
        super().__init__()
        self.size = size

    def forward(self, x):
        return x[(..., *(slice(0, n) for n in self.size))]
'''


@TORCH_CODE(S.ConvTranspose, ranks=(2,))
def _torch_conv_transpose(script: Script, layer: S.ConvTranspose, shape: Shape) -> None:
    torch_layout(script, "first")
    rank = layer.rank
    window, strides = _pair(layer.kernel_size, rank), _pair(layer.strides, rank)
    # torch gives (n − 1)·s + k + output_padding − 2·padding cells per axis; Keras n·s +
    # max(k − s, 0) (valid) or n·s (same, cropping k − s cells, the odd one at the end).
    output_padding = tuple(max(s - k, 0) for k, s in zip(window, strides, strict=True))
    crop = (tuple(max(k - s, 0) for k, s in zip(window, strides, strict=True))
            if layer.padding == "same" else (0,) * rank)
    conv = (f"nn.ConvTranspose{rank}d({shape[-1]}, {layer.filters}, kernel_size={window}, "
            f"stride={strides}, padding={tuple(c // 2 for c in crop)}, "
            f"output_padding={output_padding}, bias={layer.use_bias})")
    script.add(torch_initialized(script, conv, layer))
    if any(c % 2 for c in crop):
        size = ", ".join(map(str, layer.output_shape(shape)[:-1]))
        script.add(script.helper("CropTo", CROP_TO) + f"({size})")
    _torch_activation(script, layer.activation)


POSITIONAL_EMBEDDING = '''class PositionalEmbedding(nn.Module):
    """y[t] = x[t] + p[t]: a learned vector per time step, so that attention (blind to order)
    knows where each step is."""

    def __init__(self, steps, features, init):
        super().__init__()
        self.positions = nn.Parameter(torch.empty(steps, features))
        init(self.positions.T)  # torch reads the fans transposed: Keras's, of [steps, features]

    def forward(self, x):  # [batch, steps, features]
        return x + self.positions
'''
SELF_ATTENTION = '''class SelfAttention(nn.Module):
    """Keras's MultiHeadAttention of a sequence on itself: each head projects every step to a
    query, key and value of key_dim values, A = softmax(Q·Kᵀ / √key_dim) over the steps (the
    earlier ones and itself only, if causal), and the heads' A·V are projected back. Keras draws
    the kernels with the fans of [features, heads, key_dim], torch's Linear with those of a
    [heads·key_dim, features] matrix: the initial weights' scale differs a little."""

    def __init__(self, features, heads, key_dim, causal, dropout, bias, kernel_init, bias_init):
        super().__init__()
        self.heads, self.causal, self.dropout = heads, causal, dropout
        self.query, self.key, self.value = (
            initialized(nn.Linear(features, heads * key_dim, bias=bias), kernel_init, bias_init)
            for _ in range(3))
        self.output = initialized(nn.Linear(heads * key_dim, features, bias=bias), kernel_init,
                                  bias_init)

    def forward(self, x):  # [batch, steps, features]
        def by_head(projection):  # [batch, heads, steps, key_dim]
            return projection(x).unflatten(-1, (self.heads, -1)).transpose(1, 2)

        attended = nn.functional.scaled_dot_product_attention(
            by_head(self.query), by_head(self.key), by_head(self.value),
            dropout_p=self.dropout if self.training else 0.0, is_causal=self.causal)
        return self.output(attended.transpose(1, 2).flatten(2))  # [batch, steps, features]
'''


@TORCH_CODE(S.PositionalEmbedding)
def _torch_positional(script: Script, layer: S.PositionalEmbedding, shape: Shape) -> None:
    torch_layout(script, "last")
    script.add(script.helper("PositionalEmbedding", POSITIONAL_EMBEDDING)
               + f"({shape[0]}, {shape[1]}, {TORCH_INITIALIZERS[layer.embeddings_initializer]})")


@TORCH_CODE(S.MultiHeadAttention)
def _torch_attention(script: Script, layer: S.MultiHeadAttention, shape: Shape) -> None:
    torch_layout(script, "last")
    script.helper("initialized", INITIALIZED)
    script.add(script.helper("SelfAttention", SELF_ATTENTION)
               + f"({shape[-1]}, heads={layer.num_heads}, key_dim={layer.head_size(shape)}, "
               f"causal={layer.causal}, dropout={layer.dropout}, bias={layer.use_bias}, "
               f"kernel_init={TORCH_INITIALIZERS[layer.kernel_initializer]}, "
               f"bias_init={TORCH_INITIALIZERS[layer.bias_initializer]})")


def _keras_initializers(layer: Any) -> str:
    return (f'kernel_initializer="{layer.kernel_initializer}", '
            f'bias_initializer="{layer.bias_initializer}"')


@KERAS_CODE(S.Dense)
def _keras_dense(script: Script, layer: S.Dense, shape: Shape) -> None:
    activation = keras_activation(script, layer.activation)
    if layer.combination in SUMS:
        _check_sum(layer)
        name = script.helper(f"{_camel(layer.combination)}Dense", SUMS[layer.combination][1])
        script.add(f"{name}({layer.units}, activation={activation}, use_bias={layer.use_bias}, "
                   f"{_keras_initializers(layer)})")
        return
    if layer.combination != "linear":
        extra = _radial_weights(layer)
        name = f"{_camel(layer.combination)}Dense"
        weights = "\n".join(
            f"        self.{weight} = self.add_weight("
            f"shape=({size.replace('units', 'self.units')},), "
            f"initializer=self.{weight[:-1]}_initializer)" for weight, size in extra)
        parameters = "".join(f", {weight[:-1]}_initializer" for weight, _ in extra)
        kept = "".join(f"\n        self.{weight[:-1]}_initializer = {weight[:-1]}_initializer"
                       for weight, _ in extra)
        script.helper(name, f'''class {name}(layers.Layer):
    """{_radial_doc(layer)}."""

    def __init__(self, units, activation, kernel_initializer{parameters}):
        super().__init__()
        self.units, self.activation = units, keras.activations.get(activation)
        self.kernel_initializer = kernel_initializer{kept}

    def build(self, input_shape):
        self.centers = self.add_weight(shape=(input_shape[-1], self.units),
                                       initializer=self.kernel_initializer)
{weights}

    def call(self, x):
        d = ops.sum(ops.square(ops.expand_dims(x, -1) - self.centers), axis=-2)  # [..., units]
{_fan_in(layer)}        return self.activation({_radial_net(layer.combination, "tensorflow")})
''')
        initializers = "".join(f', {weight[:-1]}_initializer="'
                               f'{getattr(layer, weight[:-1] + "_initializer")}"'
                               for weight, _ in extra)
        script.add(f"{name}({layer.units}, activation={activation}, "
                   f'kernel_initializer="{layer.kernel_initializer}"{initializers})')
        return
    script.add(f"layers.Dense({layer.units}, activation={activation}, "
               f"use_bias={layer.use_bias}, {_keras_initializers(layer)})")


@KERAS_CODE(S.Conv, ranks=(1, 2))
def _keras_conv(script: Script, layer: S.Conv, shape: Shape) -> None:
    rank = layer.rank
    script.add(f"layers.Conv{rank}D({layer.filters}, kernel_size={_pair(layer.kernel_size, rank)}"
               f", strides={_pair(layer.strides, rank)}, padding=\"{layer.padding}\", "
               f"dilation_rate={_pair(layer.dilation, rank)}, "
               f"activation={keras_activation(script, layer.activation)}, "
               f"use_bias={layer.use_bias}, {_keras_initializers(layer)})")


@KERAS_CODE(S.Pool, ranks=(1, 2))
def _keras_pool(script: Script, layer: S.Pool, shape: Shape) -> None:
    window, strides = layer.window()
    kind = "Max" if isinstance(layer, S.MaxPool) else "Average"
    script.add(f"layers.{kind}Pooling{layer.rank}D(pool_size={window}, strides={strides}, "
               f"padding=\"{layer.padding}\")")


@KERAS_CODE(S.GlobalPool)
def _keras_global_pool(script: Script, layer: S.GlobalPool, shape: Shape) -> None:
    kind = "Max" if isinstance(layer, S.GlobalMaxPool) else "Average"
    rank = len(shape) - 1
    if rank in (1, 2):
        script.add(f"layers.Global{kind}Pooling{rank}D()")
    else:  # [steps, height, width, channels]: every axis but the channels
        reduce = "max" if kind == "Max" else "mean"
        script.add(f"layers.Lambda(lambda x: ops.{reduce}(x, axis={tuple(range(1, rank + 1))}))")


@KERAS_CODE(S.Flatten)
def _keras_flatten(script: Script, layer: S.Flatten, shape: Shape) -> None:
    script.add("layers.Flatten()")


@KERAS_CODE(S.Reshape)
def _keras_reshape(script: Script, layer: S.Reshape, shape: Shape) -> None:
    script.add(f"layers.Reshape({tuple(layer.target_shape)})")


@KERAS_CODE(S.Dropout)
def _keras_dropout(script: Script, layer: S.Dropout, shape: Shape) -> None:
    script.add(f"layers.Dropout({layer.rate})")


@KERAS_CODE(S.BatchNorm)
def _keras_batchnorm(script: Script, layer: S.BatchNorm, shape: Shape) -> None:
    script.add(f"layers.BatchNormalization(momentum={layer.momentum}, epsilon={layer.epsilon})")


@KERAS_CODE(S.LayerNorm)
def _keras_layernorm(script: Script, layer: S.LayerNorm, shape: Shape) -> None:
    script.add(f"layers.LayerNormalization(epsilon={layer.epsilon})")


@KERAS_CODE(S.Activation)
def _keras_activation_layer(script: Script, layer: S.Activation, shape: Shape) -> None:
    script.add(f"layers.Activation({keras_activation(script, layer.function)})")


@KERAS_CODE(S.UpSample, ranks=(2,))
def _keras_upsample(script: Script, layer: S.UpSample, shape: Shape) -> None:
    script.add(f"layers.UpSampling2D(size={_pair(layer.size, layer.rank)})")


@KERAS_CODE(S.RepeatVector)
def _keras_repeat_vector(script: Script, layer: S.RepeatVector, shape: Shape) -> None:
    script.add(f"layers.RepeatVector({layer.n})")


@KERAS_CODE(S.Embedding)
def _keras_embedding(script: Script, layer: S.Embedding, shape: Shape) -> None:
    script.add(f"layers.Embedding({layer.input_dim}, {layer.output_dim}, "
               f"embeddings_initializer=\"{layer.embeddings_initializer}\")")


KERAS_POSITIONAL_EMBEDDING = '''class PositionalEmbedding(layers.Layer):
    """y[t] = x[t] + p[t]: a learned vector per time step, so that attention (blind to order)
    knows where each step is."""

    def __init__(self, initializer):
        super().__init__()
        self.initializer = initializer

    def build(self, input_shape):  # [batch, steps, features]
        self.positions = self.add_weight(shape=tuple(input_shape[1:]),
                                         initializer=self.initializer)

    def call(self, x):
        return x + self.positions
'''
KERAS_SELF_ATTENTION = '''class SelfAttention(layers.Layer):
    """Keras's MultiHeadAttention of a sequence on itself: query, key and value are all x."""

    def __init__(self, causal, **attention):
        super().__init__()
        self.causal = causal
        self.attention = layers.MultiHeadAttention(**attention)

    def build(self, input_shape):
        self.attention.build(input_shape, input_shape)

    def call(self, x, training=None):
        return self.attention(x, x, use_causal_mask=self.causal, training=training)
'''


@KERAS_CODE(S.PositionalEmbedding)
def _keras_positional(script: Script, layer: S.PositionalEmbedding, shape: Shape) -> None:
    script.add(script.helper("PositionalEmbedding", KERAS_POSITIONAL_EMBEDDING)
               + f"(\"{layer.embeddings_initializer}\")")


@KERAS_CODE(S.MultiHeadAttention)
def _keras_attention(script: Script, layer: S.MultiHeadAttention, shape: Shape) -> None:
    script.add(script.helper("SelfAttention", KERAS_SELF_ATTENTION)
               + f"(causal={layer.causal}, num_heads={layer.num_heads}, "
               f"key_dim={layer.head_size(shape)}, dropout={layer.dropout}, "
               f"use_bias={layer.use_bias}, {_keras_initializers(layer)})")


@KERAS_CODE(S.ConvTranspose, ranks=(2,))
def _keras_conv_transpose(script: Script, layer: S.ConvTranspose, shape: Shape) -> None:
    rank = layer.rank
    script.add(f"layers.Conv{rank}DTranspose({layer.filters}, "
               f"kernel_size={_pair(layer.kernel_size, rank)}, "
               f"strides={_pair(layer.strides, rank)}, padding=\"{layer.padding}\", "
               f"activation={keras_activation(script, layer.activation)}, "
               f"use_bias={layer.use_bias}, {_keras_initializers(layer)})")


KERAS_RNNS = {"simple_rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}


@KERAS_CODE(S.Recurrent)
def _keras_recurrent(script: Script, layer: S.Recurrent, shape: Shape) -> None:
    forget = (f", unit_forget_bias={layer.unit_forget_bias}" if isinstance(layer, S.LSTM)
              else "")
    rnn = (f"layers.{KERAS_RNNS[layer.type]}({layer.units}, "
           f"return_sequences={layer.return_sequences}, "
           f"kernel_initializer=\"{layer.kernel_initializer}\", "
           f"recurrent_initializer=\"{layer.recurrent_initializer}\", "
           f"bias_initializer=\"{layer.bias_initializer}\"{forget})")
    script.add(f"layers.Bidirectional({rnn}, merge_mode=\"{layer.merge_mode}\")"
               if layer.bidirectional else rnn)



# --- the whole script -------------------------------------------------------------------------

# Built-in datasets a script loads as Capas does, from scikit-learn: code that sets x and y.
BUILTIN_LOADERS = {
    "builtin:iris": "x, y = datasets.load_iris(return_X_y=True)",
    "builtin:wine": "x, y = datasets.load_wine(return_X_y=True)",
    "builtin:breast_cancer": "x, y = datasets.load_breast_cancer(return_X_y=True)",
    "builtin:digits": "bunch = datasets.load_digits()\n"
                      "x, y = bunch.images[..., None], bunch.target  # [1797, 8, 8, 1], 0..16",
    "builtin:moons": "x, y = datasets.make_moons(n_samples=1000, noise=0.2, random_state=0)",
    "builtin:circles": "x, y = datasets.make_circles(n_samples=1000, noise=0.1, factor=0.5, "
                       "random_state=0)",
    "builtin:spirals": """# Two interleaved arms: the radius grows with the angle.
rng = np.random.default_rng(0)
t = np.sqrt(rng.uniform(0, 1, 500)) * 3 * np.pi
arms = [np.stack([t * np.cos(t + shift), t * np.sin(t + shift)], axis=1)
        for shift in (0.0, np.pi)]
x = np.concatenate(arms) + rng.normal(0, 0.3, (1000, 2))
y = np.repeat([0, 1], 500)""",
    "builtin:xor": """rng = np.random.default_rng(0)
x = rng.uniform(-1, 1, (1000, 2))
y = x[:, 0] * x[:, 1] > 0  # the signs of x1 and x2 differ: class 0""",
    "builtin:sine": f"""# Windows of {SINE_WINDOW} steps of a noisy sine → the value after each.
rng = np.random.default_rng(0)
series = np.sin(np.linspace(0, 60, 1020)) + rng.normal(0, 0.05, 1020)
count = len(series) - {SINE_WINDOW}
x = np.stack([series[i:i + {SINE_WINDOW}] for i in range(count)])[..., None]
y = series[{SINE_WINDOW}:].reshape(-1, 1)""",
    "builtin:sine_forecast": f"""# Noisy sine windows → the {FORECAST_STEPS} next values.
rng = np.random.default_rng(0)
series = np.sin(np.linspace(0, 60, 1020)) + rng.normal(0, 0.05, 1020)
count = len(series) - {SINE_WINDOW} - {FORECAST_STEPS} + 1
x = np.stack([series[i:i + {SINE_WINDOW}] for i in range(count)])[..., None]
y = np.stack([series[i + {SINE_WINDOW}:i + {SINE_WINDOW + FORECAST_STEPS}]
              for i in range(count)])""",
    "builtin:digit_sequences": f"""# Sequences of digit images → the largest digit: the labels
# first, then digits up to the label, with the label at a random step.
rng = np.random.default_rng(0)
digits = datasets.load_digits()
labels = rng.integers(0, 10, {SEQUENCES})
steps = (rng.random(({SEQUENCES}, {DIGIT_SEQUENCE_STEPS})) * (labels[:, None] + 1)).astype(int)
steps[np.arange({SEQUENCES}), rng.integers(0, {DIGIT_SEQUENCE_STEPS}, {SEQUENCES})] = labels
by_digit = [np.flatnonzero(digits.target == d) for d in range(10)]
picks = np.vectorize(lambda d: rng.choice(by_digit[d]))(steps)  # an image of each step's digit
x, y = digits.images[picks][..., None], labels  # [n, steps, 8, 8, 1], 0..16""",
    "builtin:reverse_sequence": f"""# Integer sequences → the same reversed (a class per step).
rng = np.random.default_rng(0)
ids = rng.integers(0, {REVERSE_VOCABULARY}, ({SEQUENCES}, {REVERSE_STEPS}))
x, y = ids[..., None], ids[:, ::-1]  # [n, steps, 1], [n, steps]""",
}


def npz_name(dataset: str) -> str:
    """The file a script reads a dataset from when it cannot make it itself."""
    return dataset.replace(":", "-") + ".npz"


def _data_section(spec: S.JobSpec, schema: Mapping[str, Any]) -> str:
    if spec.dataset in BUILTIN_LOADERS:
        load = BUILTIN_LOADERS[spec.dataset]
    else:
        load = (f'# The dataset as Capas stores it: arrays x and y in "{npz_name(spec.dataset)}".\n'
                f'with np.load("{npz_name(spec.dataset)}") as arrays:\n'
                '    x, y = arrays["x"], arrays["y"]')
    training = spec.training
    classes = spec.model.objective == "categorical_crossentropy"
    stratified = schema["task"] == "classification" and not schema.get("target_shape")
    test_samples = schema.get("test_samples")
    if test_samples:
        test_split = (f"# The last {test_samples} samples are the test split the data came with.\n"
                      f"rest, test = np.split(indices, [len(indices) - {test_samples}])")
    else:
        test_split = (f"rest, test = train_test_split(indices, test_size={TEST_FRACTION}, "
                      f"random_state=SEED{', stratify=y' if stratified else ''})")
    method = training.preprocessing
    if spec.model.layers[0].type == "embedding":
        method = "none"  # ids are not scaled
    if method == "auto":
        method = "minmax" if schema["kind"] == "image" else "standardize"
    if method == "standardize" and schema["kind"] == "sequence":
        scaling = ("# One mean and deviation for all time steps: the series is one quantity.\n"
                   "shift, scale = x[train].mean(), x[train].std()")
    elif method == "standardize":
        scaling = "shift, scale = x[train].mean(axis=0), x[train].std(axis=0)"
    elif method == "minmax":
        scaling = ("# One range for all pixels: per-pixel ranges would blow up always-dark "
                   "borders.\nshift, scale = x[train].min(), x[train].max() - x[train].min()")
    else:
        scaling = "shift, scale = 0.0, 1.0"
    targets = ("y = y.astype(np.int64)  # class indices" if classes else
               f"y = y.astype(np.float32).reshape(len(y), *{_output_shape(spec)})")
    return f'''# --- the data: {spec.dataset}, split and scaled as Capas does ---
{load}
x = np.asarray(x, dtype=np.float32)
{targets}

# Seeded splits: a {TEST_FRACTION:.0%} test split, then {training.validation_split} of the rest
# validates{"; both keep the classes' shares" if stratified else ""}.
indices = np.arange(len(x))
{test_split}
train, validation = train_test_split(rest, test_size=VALIDATION_SPLIT, random_state=SEED{
    ", stratify=y[rest]" if stratified else ""})
train, validation, test = np.sort(train), np.sort(validation), np.sort(test)

# Scaling ({method}) with the training split's statistics only.
{scaling}
scale = np.where(np.asarray(scale) < 1e-8, 1.0, scale)
x = ((x - shift) / scale).astype(np.float32).reshape(len(x), *INPUT_SHAPE)
'''


def _output_shape(spec: S.JobSpec) -> Shape:
    return tuple(S.analyze(spec.model).output_shape)


def _without_activation(layer: S.Layer) -> S.Layer:
    """The layer with its output activation left out (the loss applies it to the logits)."""
    if isinstance(layer, S.Activation):
        return layer.model_copy(update={"function": "identity"})
    if isinstance(layer, S.TimeDistributed):
        if layer.layer is not None:
            return layer.model_copy(update={"layer": _without_activation(layer.layer)})
        block = [*(layer.layers or [])]
        return layer.model_copy(update={"layers": [*block[:-1], _without_activation(block[-1])]})
    return layer.model_copy(update={"activation": "identity"})


def _layers(spec: S.JobSpec, framework: str, script: Script) -> None:
    """Write each layer; the last one's activation stays out of the model when the loss reads
    logits."""
    layers: list[S.Layer] = list(spec.model.layers)
    if spec.model.from_logits:
        layers[-1] = _without_activation(layers[-1])
    for index, (layer, shape) in enumerate(zip(layers, _shapes(layers, spec.model.input.shape),
                                               strict=False)):
        try:
            _write(script, layer, shape, f"layers[{index}]")
        except (MissingBuilder, Refused) as error:
            raise SpecError([SpecIssue(f"model.layers[{index}].type",
                                       f"'{layer.type}' cannot be written as a "
                                       f"{script.framework} script: {error}", layer.type)]
                            ) from None
    if script.framework == "pytorch":
        torch_layout(script, "last")


def _shapes(layers: Sequence[S.Layer], shape: Sequence[int]) -> list[Shape]:
    """Each layer's input shape."""
    shapes = [tuple(shape)]
    for layer in layers:
        shapes.append(layer.output_shape(shapes[-1]))
    return shapes


def _write(script: Script, layer: S.Layer, shape: Shape, path: str) -> None:
    script.lines.append(f"# {path} {layer.type}: {_shape(shape)} → "
                        f"{_shape(layer.output_shape(shape))}")
    WRITERS[script.framework][layer](script, layer, shape)


def _block(script: Script, layer: S.Nested, shape: Shape) -> str:
    """The members of a nested layer as one Sequential, written with the script's helpers."""
    inner = Script(script.framework, helpers=script.helpers)
    members = layer.members()
    for member, member_shape in zip(members, _shapes([m.layer for m in members], shape),
                                    strict=False):
        _write(inner, member.layer, member_shape, member.path)
    if script.framework == "pytorch":
        torch_layout(inner, "last")
    body = _indented(inner.lines, "    ")
    if script.framework == "pytorch":
        return f"nn.Sequential(\n{body}\n)"
    return f"keras.Sequential([\n{body}\n])"


def _indented(lines: list[str], indent: str) -> str:
    return "\n".join(textwrap.indent(line, indent) for line in lines)


TORCH_NESTED = {
    "TimeDistributed": '''class TimeDistributed(nn.Module):
    """The block applied at every time step with the same weights: [batch, steps, *step] →
    [batch, steps, *output], the steps folded into the batch."""

    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, x):
        return self.block(x.flatten(0, 1)).unflatten(0, x.shape[:2])
''',
    "Residual": '''class Residual(nn.Module):
    """y = x + block(x): the block gives back its input's shape."""

    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, x):
        return x + self.block(x)
''',
}
KERAS_RESIDUAL = '''class Residual(layers.Layer):
    """y = x + block(x): the block gives back its input's shape."""

    def __init__(self, block):
        super().__init__()
        self.block = block

    def build(self, input_shape):
        self.block.build(input_shape)

    def call(self, x, training=None):
        return x + self.block(x, training=training)
'''


@TORCH_CODE(S.Nested)
def _torch_nested(script: Script, layer: S.Nested, shape: Shape) -> None:
    torch_layout(script, "last")
    inner = layer.inner_shape(shape)
    name = "TimeDistributed" if isinstance(layer, S.TimeDistributed) else "Residual"
    block = _block(script, layer, inner)
    script.add(f"{script.helper(name, TORCH_NESTED[name])}({block})")


@KERAS_CODE(S.Nested)
def _keras_nested(script: Script, layer: S.Nested, shape: Shape) -> None:
    block = _block(script, layer, layer.inner_shape(shape))
    if isinstance(layer, S.TimeDistributed):
        script.add(f"layers.TimeDistributed({block})")
    else:
        script.add(f"{script.helper('Residual', KERAS_RESIDUAL)}({block})")


def _torch_optimizer(optimizer: Any) -> str:
    kind = optimizer.type
    rate = f"lr={optimizer.learning_rate}"
    if kind == "sgd":
        return (f"torch.optim.SGD(model.parameters(), {rate}, momentum={optimizer.momentum}, "
                f"nesterov={optimizer.nesterov})")
    if kind == "adadelta":
        return (f"torch.optim.Adadelta(model.parameters(), {rate}, rho={optimizer.rho}, "
                f"eps={optimizer.epsilon})")
    if kind == "adagrad":
        return (f"torch.optim.Adagrad(model.parameters(), {rate}, "
                f"initial_accumulator_value={optimizer.initial_accumulator_value}, "
                f"eps={optimizer.epsilon})")
    if kind == "rmsprop":
        return (f"torch.optim.RMSprop(model.parameters(), {rate}, alpha={optimizer.rho}, "
                f"eps={optimizer.epsilon}, momentum={optimizer.momentum}, "
                f"centered={optimizer.centered})")
    betas = f"betas=({optimizer.beta_1}, {optimizer.beta_2}), eps={optimizer.epsilon}"
    if kind == "adamw":
        return (f"torch.optim.AdamW(model.parameters(), {rate}, {betas}, "
                f"weight_decay={optimizer.weight_decay})")
    return f"torch.optim.Adam(model.parameters(), {rate}, {betas})"


def _keras_optimizer(optimizer: Any) -> str:
    names = {"sgd": "SGD", "adadelta": "Adadelta", "adagrad": "Adagrad", "rmsprop": "RMSprop",
             "adam": "Adam", "adamw": "AdamW"}
    arguments = ", ".join(f"{name}={value!r}" for name, value in optimizer.model_dump().items()
                          if name != "type")
    return f"keras.optimizers.{names[optimizer.type]}({arguments})"


# The loss of each objective, from logits where the last activation is folded into it.
TORCH_LOSSES = {"categorical_crossentropy": "nn.CrossEntropyLoss()",
                "binary_crossentropy": "nn.BCEWithLogitsLoss()", "mse": "nn.MSELoss()",
                "mae": "nn.L1Loss()", "huber": "nn.HuberLoss(delta=1.0)"}
KERAS_LOSSES = {"categorical_crossentropy": "keras.losses.SparseCategoricalCrossentropy"
                                            "(from_logits=True)",
                "binary_crossentropy": "keras.losses.BinaryCrossentropy(from_logits=True)",
                "mse": "keras.losses.MeanSquaredError()",
                "mae": "keras.losses.MeanAbsoluteError()",
                "huber": "keras.losses.Huber(delta=1.0)"}


def _check_objective(spec: S.JobSpec) -> None:
    objective = spec.model.objective
    if catalog.OBJECTIVES[objective].task == "classification" and not spec.model.from_logits:
        activation = {v: k for k, v in catalog.LOGIT_ACTIVATIONS.items()}[objective]
        raise SpecError([SpecIssue("model.objective", f"{objective} is written as a script "
                                   f"only after a {activation} output", objective)])


def _metric(spec: S.JobSpec) -> str:
    return {"categorical_crossentropy": "accuracy",
            "binary_crossentropy": "accuracy"}.get(spec.model.objective, "mae")


def _header(spec: S.JobSpec, framework: str, imports: str) -> str:
    training = spec.training
    if spec.dataset in BUILTIN_LOADERS:
        imports = imports.replace("from sklearn.model_selection",
                                  "from sklearn import datasets\nfrom sklearn.model_selection")
    return f'''"""{spec.model.name}: the Capas job spec as a plain {
        "PyTorch" if framework == "pytorch" else "Keras 3"} script.

Capas trained this network from its JSON declaration; this script builds the same network,
loads the same data with the same split and scaling, and trains it with the same optimizer,
epochs, batch size and seed. The numbers come close to the job's, not equal: the frameworks
draw their random numbers in their own ways.
"""

{imports}

SEED = {training.seed}
EPOCHS = {training.epochs}
BATCH_SIZE = {training.batch_size}
VALIDATION_SPLIT = {training.validation_split}
INPUT_SHAPE = {tuple(spec.model.input.shape)}  # one sample, channels last
'''


def _torch_script(spec: S.JobSpec, schema: Mapping[str, Any]) -> str:
    script = Script("pytorch")
    _layers(spec, "pytorch", script)
    metric = _metric(spec)
    objective = spec.model.objective
    output_activation = spec.model.output_activation or "identity"
    if spec.model.from_logits:
        predict = torch_activation(Script("pytorch"), output_activation)
        predict_note = (f"# The loss reads the logits; predictions apply the {output_activation}."
                        f"\nto_outputs = {predict}")
    else:
        predict_note = "to_outputs = nn.Identity()"
    if objective == "categorical_crossentropy":
        loss_of = "loss_fn(outputs.flatten(0, -2), targets.flatten())  # a class per row"
        score = "(outputs.argmax(-1) == targets).float().mean()"
    elif objective == "binary_crossentropy":
        loss_of = "loss_fn(outputs, targets.reshape(outputs.shape).float())"
        score = "((outputs > 0.5) == (targets.reshape(outputs.shape) > 0.5)).float().mean()"
    else:
        loss_of = "loss_fn(outputs, targets)"
        score = "(outputs - targets).abs().mean()"
    stopping = spec.training.early_stopping
    imports = ("import json\nimport math\nfrom functools import partial\n\nimport numpy as np\n"
               "import torch\nfrom sklearn.model_selection import train_test_split\n"
               "from torch import nn")
    helpers = "\n\n".join(script.helpers.values())
    body = _indented(script.lines, " " * 12)
    stop_code = ""
    if stopping is not None:
        better = "<" if stopping.monitor.endswith("loss") else ">"
        sign = "-" if better == "<" else "+"
        stop_code = f'''
    # Early stopping on {stopping.monitor}: {stopping.patience} epochs without a change of
    # {stopping.min_delta} or more.
    current = metrics["{stopping.monitor}"]
    if best is None or current {better} best {sign} {stopping.min_delta}:
        best, waited = current, 0
    else:
        waited += 1
        if waited >= {stopping.patience}:
            break'''
    return f'''{_header(spec, "pytorch", imports)}

{_data_section(spec, schema)}

# --- the network ---
{helpers}

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(
{body}
        )

    def forward(self, x):  # x: [batch, *INPUT_SHAPE]
        return self.layers(x)


torch.manual_seed(SEED)  # the initial weights, the batches' order and the dropout
model = Net()
{predict_note}
loss_fn = {TORCH_LOSSES[objective]}
optimizer = {_torch_optimizer(spec.training.optimizer)}
x_all, y_all = torch.from_numpy(x), torch.from_numpy(y)


def evaluate(part):
    """The loss, and the {metric} of the predictions, on the samples `part`."""
    model.eval()
    with torch.no_grad():
        outputs = model(x_all[part])
        targets = y_all[part]
        loss = {loss_of}
        outputs = to_outputs(outputs)
        return loss.item(), {score}.item()


# --- training ---
{"best, waited = None, 0  # early stopping's best and the epochs since" if stopping else ""}
for epoch in range(1, EPOCHS + 1):
    model.train()
    total, order = 0.0, torch.from_numpy(train)[torch.randperm(len(train))]
    for start in range(0, len(order), BATCH_SIZE):
        batch = order[start:start + BATCH_SIZE]
        outputs, targets = model(x_all[batch]), y_all[batch]
        loss = {loss_of}
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(batch)
    val_loss, val_metric = evaluate(validation)
    metrics = {{"loss": total / len(train), "val_loss": val_loss, "val_{metric}": val_metric}}
    print(f"epoch {{epoch}}: " + ", ".join(f"{{k}} {{v:.4f}}" for k, v in metrics.items()))
{stop_code}

test_loss, test_metric = evaluate(test)
print(json.dumps({{"test_{metric}": test_metric, "test_loss": test_loss}}))
'''


def _keras_script(spec: S.JobSpec, schema: Mapping[str, Any]) -> str:
    script = Script("tensorflow")
    _layers(spec, "tensorflow", script)
    metric = _metric(spec)
    objective = spec.model.objective
    output_activation = spec.model.output_activation or "identity"
    stopping = spec.training.early_stopping
    callbacks = ("[]" if stopping is None else
                 f'[keras.callbacks.EarlyStopping(monitor="{stopping.monitor}", '
                 f"patience={stopping.patience}, min_delta={stopping.min_delta})]")
    metrics = ('[keras.metrics.SparseCategoricalAccuracy(name="accuracy")]'
               if objective == "categorical_crossentropy" else
               '[keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)]'
               if objective == "binary_crossentropy" else
               '[keras.metrics.MeanAbsoluteError(name="mae")]')
    imports = ("import json\nimport math\n\nimport keras\nimport numpy as np\n"
               "from keras import layers, ops\n"
               "from sklearn.model_selection import train_test_split")
    helpers = "\n\n".join(script.helpers.values())
    body = _indented(script.lines, " " * 4)
    logits_note = (f"# The last layer gives logits: the loss applies the {output_activation} "
                   "itself, more stably.\n" if spec.model.from_logits else "")
    return f'''{_header(spec, "tensorflow", imports)}

{_data_section(spec, schema)}

# --- the network ---
{helpers}

keras.utils.set_random_seed(SEED)  # the initial weights, the batches' order and the dropout
{logits_note}model = keras.Sequential([
    keras.Input(shape=INPUT_SHAPE),
{body}
])
model.compile(optimizer={_keras_optimizer(spec.training.optimizer)},
              loss={KERAS_LOSSES[objective]},
              metrics={metrics})
model.summary()

# --- training ---
model.fit(x[train], y[train], validation_data=(x[validation], y[validation]), epochs=EPOCHS,
          batch_size=BATCH_SIZE, shuffle=True, verbose=2, callbacks={callbacks})
test_loss, test_metric = model.evaluate(x[test], y[test], batch_size=BATCH_SIZE, verbose=0)
print(json.dumps({{"test_{metric}": test_metric, "test_loss": test_loss}}))
'''


def generate(spec: S.JobSpec, schema: Mapping[str, Any], framework: str | None = None) -> str:
    """The script for `spec` in `framework` (default: the job's), for a dataset of `schema`
    (`ml.datasets.Dataset.schema`: task, kind, target_shape, test_samples)."""
    framework = framework or spec.framework
    if framework not in FRAMEWORKS:
        raise SpecError([SpecIssue("framework", f"must be one of {', '.join(FRAMEWORKS)}",
                                   framework)])
    _check_objective(spec)
    return (_torch_script if framework == "pytorch" else _keras_script)(spec, schema)
