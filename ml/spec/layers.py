"""One pydantic schema class per layer type: its parameters and defaults, its output shape, its
canonical weights and its multiply-adds. No framework is imported here; each backend registers a
builder per class (`ml.registry`)."""

import math
from abc import abstractmethod
from typing import Annotated, ClassVar, Literal, NamedTuple, get_args

from pydantic import (
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ml.spec.base import (
    ActivationName,
    CombinationName,
    Initializer,
    PositiveFloat,
    PositiveInt,
    Probability,
    Shape,
    ShapeError,
    StrictModel,
    Weight,
    dims,
    type_name,
)

# Parameters several layer types share, each with its description.
UnitActivation = Annotated[ActivationName, Field(
    description="the activation function applied to each output value (see activations)")]
UseBias = Annotated[bool, Field(description="add a learned bias to each output")]
KernelInitializer = Annotated[Initializer, Field(
    description="the distribution the kernel's weights start from")]
BiasInitializer = Annotated[Initializer, Field(
    description="the distribution the biases start from")]
Padding = Annotated[Literal["valid", "same"], Field(
    description="valid: the window stays inside the input; same: the input is padded with "
                "zeros so that the output has ⌈size / strides⌉ positions on each axis")]


class Layer(StrictModel):
    """A layer type: its parameters, output shape and canonical weights."""

    type: str

    def output_shape(self, shape: Shape) -> Shape:
        return shape

    def weights(self, shape: Shape) -> dict[str, Weight]:
        """The canonical weight layout, shared by both backends and the ONNX exporter."""
        return {}

    def param_count(self, shape: Shape) -> int:
        return sum(math.prod(w.shape) for w in self.weights(shape).values())

    def multiply_adds(self, shape: Shape) -> int:
        """Roughly the multiply-adds of one sample's forward pass: each weight is used once per
        output position (a dense layer on a sequence, a convolution), and each output value
        costs one more."""
        output = self.output_shape(shape)
        return self.param_count(shape) * math.prod(output[:-1]) + math.prod(output)

    @property
    def output_activation(self) -> str | None:
        return None


class Dense(Layer):
    """A layer of units on the last axis: a combination function, then an activation."""

    type: Literal["dense"]
    units: PositiveInt = Field(description="the number of units: the size of the output's "
                                           "last axis")
    activation: UnitActivation = "identity"
    combination: CombinationName = Field(
        "linear", description="how a unit combines its inputs into its net input "
                              "(see combinations)")
    use_bias: bool = Field(True, description="add a learned bias to each unit's net input "
                                             "(linear and eqslopes combinations)")
    kernel_initializer: Initializer = Field(
        "glorot_uniform", description="the distribution the weights (the centres, for a "
                                      "radial combination) start from")
    bias_initializer: BiasInitializer = "zeros"
    width_initializer: Initializer = Field(
        "ones", description="the distribution a radial combination's widths b start from")
    altitude_initializer: Initializer = Field(
        "ones", description="the distribution the altitudes a of xradial and ewradial start "
                            "from")

    def output_shape(self, shape: Shape) -> Shape:
        return (*shape[:-1], self.units)

    def weights(self, shape: Shape) -> dict[str, Weight]:
        fan_in, units, combination = shape[-1], self.units, self.combination
        bias = {"bias": Weight((units,), self.bias_initializer)} if self.use_bias else {}
        if combination == "additive":
            return {}
        if combination == "linear":  # kernel [fan_in, units], the Keras layout
            return {"kernel": Weight((fan_in, units), self.kernel_initializer), **bias}
        if combination == "eqslopes":  # one weight per input, shared by all units
            return {"kernel": Weight((fan_in,), self.kernel_initializer), **bias}
        weights = {"centers": Weight((fan_in, units), self.kernel_initializer)}
        shared = combination in ("ewradial", "eqradial")
        weights["widths"] = Weight((1,) if shared else (units,), self.width_initializer)
        if combination in ("xradial", "ewradial"):
            weights["altitudes"] = Weight((units,), self.altitude_initializer)
        return weights

    @property
    def output_activation(self) -> str | None:
        return self.activation


IntOrPair = PositiveInt | Annotated[list[PositiveInt], Field(min_length=1, max_length=2)]


def same_padding(sizes: Shape, window: Shape, strides: Shape,
                 dilation: Shape) -> list[tuple[int, int]]:
    """Keras's 'same' padding per spatial axis: (before, after), the odd cell after."""
    pads = []
    for size, k, s, d in zip(sizes, window, strides, dilation, strict=True):
        total = max((-(-size // s) - 1) * s + d * (k - 1) + 1 - size, 0)
        pads.append((total // 2, total - total // 2))
    return pads


class Spatial(Layer):
    """Shared by convolutions and poolings over 1 or 2 channels-last spatial axes."""

    rank: ClassVar[int]

    def _tuple(self, value: int | list[int], field: str) -> tuple[int, ...]:
        values = (value,) * self.rank if isinstance(value, int) else tuple(value)
        if len(values) != self.rank:
            raise ShapeError(f"expected {self.rank} values, received {list(values)}", field, value)
        return values

    def _check_input(self, shape: Shape) -> None:
        if len(shape) != self.rank + 1:
            layout = "[steps, channels]" if self.rank == 1 else "[height, width, channels]"
            hint = "; add a reshape layer" if len(shape) == 1 else ""
            raise ShapeError(f"{self.type} expects input of shape {layout}, "
                             f"received {list(shape)}{hint}", None, list(shape))

    def _spatial_out(self, shape: Shape, window: tuple[int, ...], strides: tuple[int, ...],
                     dilation: tuple[int, ...], padding: str, field: str) -> tuple[int, ...]:
        out = []
        for size, k, s, d in zip(shape[:-1], window, strides, dilation, strict=True):
            extent = d * (k - 1) + 1
            if padding == "same":
                out.append(-(-size // s))
            elif extent > size:
                raise ShapeError(f"{dims(window)} is larger than the input "
                                 f"({dims(shape[:-1])}) at this layer", field,
                                 getattr(self, field))
            else:
                out.append((size - extent) // s + 1)
        return tuple(out)


class Conv(Spatial):
    """A convolution: filters slid over the spatial axes, each giving one output channel."""

    filters: PositiveInt = Field(description="the number of filters: the output's channels")
    kernel_size: IntOrPair = Field(description="the window's size: one number for every "
                                               "spatial axis, or one per axis")
    strides: IntOrPair = Field(1, description="how far the window moves at each step: one "
                                              "number for every spatial axis, or one per axis")
    padding: Padding = "valid"
    dilation: IntOrPair = Field(1, description="the spacing of the window's cells (1: "
                                               "adjacent cells); more than 1 needs strides 1")
    activation: UnitActivation = "identity"
    use_bias: UseBias = True
    kernel_initializer: KernelInitializer = "glorot_uniform"
    bias_initializer: BiasInitializer = "zeros"

    def output_shape(self, shape: Shape) -> Shape:
        self._check_input(shape)
        strides, dilation = self._tuple(self.strides, "strides"), self._tuple(self.dilation,
                                                                              "dilation")
        if max(strides) > 1 and max(dilation) > 1:
            raise ShapeError(f"{self.dilation} cannot combine with strides {self.strides}: "
                             "use strides 1 with a dilation", "dilation", self.dilation)
        spatial = self._spatial_out(shape, self._tuple(self.kernel_size, "kernel_size"),
                                    strides, dilation, self.padding, "kernel_size")
        return (*spatial, self.filters)

    def weights(self, shape: Shape) -> dict[str, Weight]:
        # kernel [*kernel_size, in_channels, filters], the Keras layout
        kernel = (*self._tuple(self.kernel_size, "kernel_size"), shape[-1], self.filters)
        weights = {"kernel": Weight(kernel, self.kernel_initializer)}
        if self.use_bias:
            weights["bias"] = Weight((self.filters,), self.bias_initializer)
        return weights

    @property
    def output_activation(self) -> str | None:
        return self.activation


class Conv1D(Conv):
    type: Literal["conv1d"]
    rank: ClassVar[int] = 1


class Conv2D(Conv):
    type: Literal["conv2d"]
    rank: ClassVar[int] = 2


class ConvTranspose(Spatial):
    """A transposed convolution: each input position scatters its filters' windows into the
    output, strides apart, so that the output grows: on each spatial axis of size n, with
    window k and strides s, valid gives n·s + max(k − s, 0) positions, same gives n·s."""

    filters: PositiveInt = Field(description="the number of filters: the output's channels")
    kernel_size: IntOrPair = Field(description="the window's size: one number for every "
                                               "spatial axis, or one per axis")
    strides: IntOrPair = Field(1, description="how far apart in the output the windows of "
                                              "neighbouring input positions land: the factor "
                                              "the output grows by")
    padding: Annotated[Literal["valid", "same"], Field(
        description="valid: the whole of every window is kept; same: the output is cropped "
                    "to n·strides positions on each axis (the odd cell cropped at the end)")
    ] = "valid"
    activation: UnitActivation = "identity"
    use_bias: UseBias = True
    kernel_initializer: KernelInitializer = "glorot_uniform"
    bias_initializer: BiasInitializer = "zeros"

    def output_shape(self, shape: Shape) -> Shape:
        self._check_input(shape)
        window, strides = self._tuple(self.kernel_size, "kernel_size"), self._tuple(
            self.strides, "strides")
        spatial = (n * s if self.padding == "same" else n * s + max(k - s, 0)
                   for n, k, s in zip(shape[:-1], window, strides, strict=True))
        return (*spatial, self.filters)

    def weights(self, shape: Shape) -> dict[str, Weight]:
        # kernel [*kernel_size, filters, in_channels], the Keras layout (outputs first)
        kernel = (*self._tuple(self.kernel_size, "kernel_size"), self.filters, shape[-1])
        weights = {"kernel": Weight(kernel, self.kernel_initializer)}
        if self.use_bias:
            weights["bias"] = Weight((self.filters,), self.bias_initializer)
        return weights

    def multiply_adds(self, shape: Shape) -> int:
        # Every kernel weight once per input position, and one more per output value.
        kernel = math.prod(self.weights(shape)["kernel"].shape)
        return kernel * math.prod(shape[:-1]) + math.prod(self.output_shape(shape))

    @property
    def output_activation(self) -> str | None:
        return self.activation


class Conv2DTranspose(ConvTranspose):
    type: Literal["conv2d_transpose"]
    rank: ClassVar[int] = 2


class UpSample(Spatial):
    """Each value repeated `size` times along every spatial axis (nearest neighbour):
    [h, w, c] → [h·size₁, w·size₂, c]."""

    size: IntOrPair = Field(2, description="how many times each value is repeated: one number "
                                           "for every spatial axis, or one per axis")

    def output_shape(self, shape: Shape) -> Shape:
        self._check_input(shape)
        factors = self._tuple(self.size, "size")
        return (*(n * f for n, f in zip(shape[:-1], factors, strict=True)), shape[-1])


class UpSample2D(UpSample):
    type: Literal["upsample2d"]
    rank: ClassVar[int] = 2


class Pool(Spatial):
    pool_size: IntOrPair = Field(2, description="the window's size: one number for every "
                                                "spatial axis, or one per axis")
    strides: IntOrPair | None = Field(None, description="how far the window moves at each "
                                                        "step; by default the pool size")
    padding: Padding = "valid"

    def output_shape(self, shape: Shape) -> Shape:
        self._check_input(shape)
        window, strides = self.window()
        spatial = self._spatial_out(shape, window, strides, (1,) * self.rank, self.padding,
                                    "pool_size")
        return (*spatial, shape[-1])

    def window(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        window = self._tuple(self.pool_size, "pool_size")
        return window, window if self.strides is None else self._tuple(self.strides, "strides")


class MaxPool(Pool):
    """The largest value of each window."""


class AvgPool(Pool):
    """The mean of each window, over the cells inside the input only."""


class MaxPool1D(MaxPool):
    type: Literal["maxpool1d"]
    rank: ClassVar[int] = 1


class MaxPool2D(MaxPool):
    type: Literal["maxpool2d"]
    rank: ClassVar[int] = 2


class AvgPool1D(AvgPool):
    type: Literal["avgpool1d"]
    rank: ClassVar[int] = 1


class AvgPool2D(AvgPool):
    type: Literal["avgpool2d"]
    rank: ClassVar[int] = 2


class GlobalPool(Layer):
    """Max or mean over every axis but the channels: [*spatial, channels] → [channels]."""

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) < 2:
            raise ShapeError(f"{self.type} expects input with spatial or time axes and "
                             f"channels, received {list(shape)}", None, list(shape))
        return (shape[-1],)


class GlobalAvgPool(GlobalPool):
    type: Literal["global_avgpool"]


class GlobalMaxPool(GlobalPool):
    type: Literal["global_maxpool"]


class Flatten(Layer):
    """All axes into one: [*shape] → [product of shape]."""

    type: Literal["flatten"]

    def output_shape(self, shape: Shape) -> Shape:
        return (math.prod(shape),)


class Reshape(Layer):
    """The same values in another shape."""

    type: Literal["reshape"]
    target_shape: Annotated[list[PositiveInt], Field(min_length=1, max_length=4)] = Field(
        description="the output's shape, without the batch axis; it holds as many values as "
                    "the input")

    def output_shape(self, shape: Shape) -> Shape:
        if math.prod(self.target_shape) != math.prod(shape):
            raise ShapeError(f"{self.target_shape} holds {math.prod(self.target_shape)} values, "
                             f"the input {list(shape)} holds {math.prod(shape)}",
                             "target_shape", self.target_shape)
        return tuple(self.target_shape)


class Dropout(Layer):
    """While training, sets a random share of its inputs to zero; at inference, passes them on."""

    type: Literal["dropout"]
    rate: Probability = Field(0.5, description="the share of values set to zero at each "
                                               "training step; the others are scaled by "
                                               "1 / (1 − rate)")


class BatchNorm(Layer):
    """Normalizes the last axis. Keras's convention for momentum: the running statistics
    move as `running = momentum·running + (1 − momentum)·batch` (torch's momentum is 1 − it)."""

    type: Literal["batchnorm"]
    momentum: Probability = Field(0.99, description="how much of the running mean and "
                                                    "variance each training batch keeps")
    epsilon: PositiveFloat = Field(1e-3, description="added to the variance before its square "
                                                     "root, so that it never divides by zero")

    def weights(self, shape: Shape) -> dict[str, Weight]:
        channels = (shape[-1],)
        return {"gamma": Weight(channels, "ones"), "beta": Weight(channels, "zeros"),
                "moving_mean": Weight(channels, "zeros"),
                "moving_variance": Weight(channels, "ones")}


class LayerNorm(Layer):
    """Normalizes each position's last axis on its own values, in training and inference
    alike: y = γ·(x − mean) / √(variance + ε) + β, the mean and (biased) variance over the last
    axis; γ and β are learned per feature (Keras's LayerNormalization)."""

    type: Literal["layernorm"]
    epsilon: PositiveFloat = Field(1e-3, description="ε: added to the variance before its "
                                                     "square root, so that it never divides "
                                                     "by zero")

    def weights(self, shape: Shape) -> dict[str, Weight]:
        features = (shape[-1],)
        return {"gamma": Weight(features, "ones"), "beta": Weight(features, "zeros")}

    def multiply_adds(self, shape: Shape) -> int:
        return 4 * math.prod(shape)  # the mean, the variance, the scaling and the shift


class RepeatVector(Layer):
    """A vector repeated n times along a new time axis: [features] → [n, features]; what
    turns an encoder's last state into a decoder's input sequence."""

    type: Literal["repeat_vector"]
    n: PositiveInt = Field(description="how many time steps the output has")

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) != 1:
            raise ShapeError(f"repeat_vector expects one vector per sample, received "
                             f"{list(shape)}; add a flatten layer or a recurrent layer without "
                             "return_sequences", None, list(shape))
        return (self.n, shape[0])


class Recurrent(Layer):
    """Reads [timesteps, features]; gates in Keras's order and layout."""

    gates: ClassVar[int]
    units: PositiveInt = Field(description="the size of the hidden state")
    return_sequences: bool = Field(False, description="answer the state at every time step "
                                                     "([timesteps, units]) rather than the "
                                                     "last one")
    bidirectional: bool = Field(False, description="also read the sequence backwards and join "
                                                   "both directions' states (see merge_mode)")
    merge_mode: Literal["concat", "sum"] = Field(
        "concat", description="how a bidirectional layer joins its directions' states: "
                              "concat (twice the units) or sum")
    kernel_initializer: Initializer = Field(
        "glorot_uniform", description="the distribution the input kernel starts from")
    recurrent_initializer: Initializer = Field(
        "orthogonal", description="the distribution the recurrent kernel starts from")
    bias_initializer: BiasInitializer = "zeros"

    @property
    def directions(self) -> tuple[str, ...]:
        return ("forward", "backward") if self.bidirectional else ("forward",)

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) != 2:
            hint = "; add a reshape layer" if len(shape) == 1 else ""
            raise ShapeError(f"{self.type} expects input of shape [timesteps, features], "
                             f"received {list(shape)}{hint}", None, list(shape))
        if self.merge_mode != "concat" and not self.bidirectional:
            raise ShapeError(f"merge_mode {self.merge_mode} joins the two directions of a "
                             "bidirectional layer; set bidirectional", "merge_mode",
                             self.merge_mode)
        width = self.units * (len(self.directions) if self.merge_mode == "concat" else 1)
        return (shape[0], width) if self.return_sequences else (width,)

    def _bias_shape(self) -> Shape:
        return (self.gates * self.units,)

    def multiply_adds(self, shape: Shape) -> int:
        # Every weight once per time step, whatever the layer returns.
        return self.param_count(shape) * shape[0] + math.prod(self.output_shape(shape))

    def weights(self, shape: Shape) -> dict[str, Weight]:
        width = self.gates * self.units
        weights = {}
        for direction in self.directions:
            # kernel [features, gates·units], recurrent_kernel [units, gates·units]
            weights[f"{direction}.kernel"] = Weight((shape[-1], width), self.kernel_initializer)
            weights[f"{direction}.recurrent_kernel"] = Weight((self.units, width),
                                                              self.recurrent_initializer)
            weights[f"{direction}.bias"] = Weight(self._bias_shape(), self.bias_initializer)
        return weights


class SimpleRNN(Recurrent):
    """The plain recurrent layer: the state is the activation (tanh) of the input's and the
    previous state's products."""

    type: Literal["simple_rnn"]
    gates: ClassVar[int] = 1


class LSTM(Recurrent):
    """Gates i, f, c, o; `unit_forget_bias` starts the forget gate's bias at one (as Keras)."""

    type: Literal["lstm"]
    gates: ClassVar[int] = 4
    unit_forget_bias: bool = Field(True, description="start the forget gate's bias at one, so "
                                                     "that the cell remembers from the start")


class GRU(Recurrent):
    """Gates z, r, h with the reset gate applied after the recurrent product; the bias holds
    the input bias and the recurrent bias: [2, 3·units]."""

    type: Literal["gru"]
    gates: ClassVar[int] = 3

    def _bias_shape(self) -> Shape:
        return (2, self.gates * self.units)


class Embedding(Layer):
    """Integer ids → vectors: [...] → [..., output_dim]; the model's first layer."""

    type: Literal["embedding"]
    input_dim: PositiveInt = Field(description="the number of ids: inputs are integers from 0 "
                                               "to input_dim − 1")
    output_dim: PositiveInt = Field(description="the length of each id's vector")
    embeddings_initializer: Initializer = Field(
        "random_uniform", description="the distribution the vectors start from")

    def output_shape(self, shape: Shape) -> Shape:
        return (*shape, self.output_dim)

    def weights(self, shape: Shape) -> dict[str, Weight]:
        return {"embeddings": Weight((self.input_dim, self.output_dim),
                                     self.embeddings_initializer)}

    def multiply_adds(self, shape: Shape) -> int:
        return math.prod(self.output_shape(shape))  # a lookup: one row copied per id


class Activation(Layer):
    """An activation function on its own, applied to each value."""

    type: Literal["activation"]
    function: ActivationName = Field(description="the activation function (see activations)")

    @property
    def output_activation(self) -> str | None:
        return self.function


class PositionalEmbedding(Layer):
    """A learned vector per time step added to the input: y[t] = x[t] + p[t], so that the
    layers after it (attention, which is blind to order) know where each step is."""

    type: Literal["positional_embedding"]
    embeddings_initializer: Initializer = Field(
        "glorot_uniform", description="the distribution the position vectors start from")

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) != 2:
            raise ShapeError(f"positional_embedding needs a time axis: input of shape "
                             f"[timesteps, features], received {list(shape)}", None,
                             list(shape))
        return shape

    def weights(self, shape: Shape) -> dict[str, Weight]:
        return {"embeddings": Weight(shape, self.embeddings_initializer)}  # [timesteps, features]

    def multiply_adds(self, shape: Shape) -> int:
        return math.prod(shape)


class MultiHeadAttention(Layer):
    """Self-attention over the time axis, as Keras's MultiHeadAttention: each head h projects
    every step to a query, key and value of key_dim values, A = softmax(Q·Kᵀ / √key_dim) over
    the steps (only the earlier ones and itself if causal), and the heads' A·V are projected
    back to the input's features: [timesteps, features] → [timesteps, features]."""

    type: Literal["multi_head_attention"]
    num_heads: PositiveInt = Field(description="how many heads attend, each with its own "
                                               "projections")
    key_dim: PositiveInt | None = Field(
        None, description="the size of each head's queries, keys and values; by default the "
                          "input's features divided by num_heads, which must divide them")
    causal: bool = Field(False, description="let each step attend only to itself and the "
                                            "steps before it (a decoder's mask)")
    dropout: Probability = Field(0.0, description="the share of attention weights set to zero "
                                                  "at each training step")
    use_bias: UseBias = True
    kernel_initializer: KernelInitializer = "glorot_uniform"
    bias_initializer: BiasInitializer = "zeros"

    def head_size(self, shape: Shape) -> int:
        if self.key_dim is not None:
            return self.key_dim
        features = shape[-1]
        if features % self.num_heads:
            raise ShapeError(f"{self.num_heads} heads do not divide the input's {features} "
                             "features: give key_dim, or a number of heads that divides them",
                             "num_heads", self.num_heads)
        return features // self.num_heads

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) != 2:
            field, value = ("causal", self.causal) if self.causal else (None, list(shape))
            raise ShapeError(f"{'a causal mask' if self.causal else 'multi_head_attention'} "
                             f"needs a time axis: input of shape [timesteps, features], "
                             f"received {list(shape)}", field, value)
        self.head_size(shape)
        return shape

    def weights(self, shape: Shape) -> dict[str, Weight]:
        # Keras's layout: query/key/value kernels [features, heads, key_dim], biases
        # [heads, key_dim]; the output kernel [heads, key_dim, features], its bias [features].
        features, heads, size = shape[-1], self.num_heads, self.head_size(shape)
        weights = {}
        for name in ("query", "key", "value"):
            weights[f"{name}.kernel"] = Weight((features, heads, size), self.kernel_initializer)
            if self.use_bias:
                weights[f"{name}.bias"] = Weight((heads, size), self.bias_initializer)
        weights["attention_output.kernel"] = Weight((heads, size, features),
                                                    self.kernel_initializer)
        if self.use_bias:
            weights["attention_output.bias"] = Weight((features,), self.bias_initializer)
        return weights

    def multiply_adds(self, shape: Shape) -> int:
        # The projections once per step; Q·Kᵀ and A·V: steps² products of key_dim per head.
        steps = shape[0]
        attention = 2 * steps * steps * self.num_heads * self.head_size(shape)
        return self.param_count(shape) * steps + attention + math.prod(shape)


class Member(NamedTuple):
    """One layer of a block: where it is in the JSON, the prefix of its weights' names."""

    path: str  # "layers[0]", or "layer" for time_distributed's one layer
    prefix: str  # "layers.0.", or "layer."
    layer: Layer


class Nested(Layer):
    """A layer made of a block of layers applied in order; an inner layer's weights are named
    by its place (`layers.0.kernel`)."""

    @abstractmethod
    def members(self) -> list[Member]:
        """The block's layers, in order."""

    def member_shapes(self, shape: Shape) -> list[Shape]:
        """Each member's input shape, and last the block's output shape; a member's error is
        raised naming its path within this layer."""
        shapes = [shape]
        for member in self.members():
            self.check_member(member)
            try:
                shapes.append(member.layer.output_shape(shapes[-1]))
            except ShapeError as error:
                field = f"{member.path}.{error.field}" if error.field else member.path
                raise ShapeError(str(error), field, error.value) from None
        return shapes

    def check_member(self, member: Member) -> None:
        if isinstance(member.layer, Embedding):
            raise ShapeError("embedding must be the model's first layer: it reads integer ids "
                             "from the input", f"{member.path}.type", member.layer.type)

    def weights(self, shape: Shape) -> dict[str, Weight]:
        inner = self.inner_shape(shape)
        return {f"{member.prefix}{name}": weight
                for member, member_shape in zip(self.members(), self.member_shapes(inner),
                                                strict=False)
                for name, weight in member.layer.weights(member_shape).items()}

    def inner_shape(self, shape: Shape) -> Shape:
        """The shape the block's first layer reads."""
        return shape

    def block_multiply_adds(self, shape: Shape) -> int:
        inner = self.inner_shape(shape)
        return sum(member.layer.multiply_adds(member_shape)
                   for member, member_shape in zip(self.members(), self.member_shapes(inner),
                                                   strict=False))


# What time_distributed applies at every step: layers that see one step's values alone.
TIME_DISTRIBUTED_TYPES = ("dense", "conv1d", "conv2d", "maxpool1d", "maxpool2d", "avgpool1d",
                          "avgpool2d", "global_avgpool", "global_maxpool", "flatten", "dropout",
                          "batchnorm")


class TimeDistributed(Nested):
    """The same layer, or block of layers, applied at every time step with the same weights:
    [timesteps, *step] → [timesteps, *output of the block on one step] (a frame's CNN before an
    LSTM, a dense head on every step of a decoder). The steps are folded into the batch, so a
    batchnorm inside takes its statistics over every step."""

    type: Literal["time_distributed"]
    layer: "AnyLayer | None" = Field(None, description="the layer applied at every time step: "
                                                       "a " + ", ".join(TIME_DISTRIBUTED_TYPES))
    layers: Annotated[list["AnyLayer"], Field(min_length=1, max_length=8)] | None = Field(
        None, description="instead of layer: a short list of such layers, applied in order "
                          "at every time step")

    @model_validator(mode="after")
    def _one_block(self) -> "TimeDistributed":
        if (self.layer is None) == (self.layers is None):
            raise PydanticCustomError("one_block", "give either layer or layers")
        return self

    def members(self) -> list[Member]:
        if self.layer is not None:
            return [Member("layer", "layer.", self.layer)]
        return [Member(f"layers[{j}]", f"layers.{j}.", layer)
                for j, layer in enumerate(self.layers or [])]

    def check_member(self, member: Member) -> None:
        if member.layer.type not in TIME_DISTRIBUTED_TYPES:
            raise ShapeError(f"time_distributed cannot apply {member.layer.type} at each time "
                             f"step; it applies {', '.join(TIME_DISTRIBUTED_TYPES)}",
                             f"{member.path}.type", member.layer.type)

    def inner_shape(self, shape: Shape) -> Shape:
        if len(shape) < 2:
            raise ShapeError(f"time_distributed needs a time axis: input of shape "
                             f"[timesteps, ...], received {list(shape)}", None, list(shape))
        return shape[1:]

    def output_shape(self, shape: Shape) -> Shape:
        return (shape[0], *self.member_shapes(self.inner_shape(shape))[-1])

    def multiply_adds(self, shape: Shape) -> int:
        return shape[0] * self.block_multiply_adds(shape)

    @property
    def output_activation(self) -> str | None:
        return self.members()[-1].layer.output_activation


class Residual(Nested):
    """A block of layers whose output is added to its input: y = x + block(x) (a transformer's
    sublayer: layernorm, attention, dropout). The block must give back its input's shape."""

    type: Literal["residual"]
    layers: Annotated[list["AnyLayer"], Field(min_length=1, max_length=16)] = Field(
        description="the block: layers applied in order, each with its own activation, the "
                    "last one's output of the input's shape")

    def members(self) -> list[Member]:
        return [Member(f"layers[{j}]", f"layers.{j}.", layer)
                for j, layer in enumerate(self.layers)]

    def output_shape(self, shape: Shape) -> Shape:
        out = self.member_shapes(shape)[-1]
        if out != shape:
            raise ShapeError(f"the block's output {list(out)} differs from its input "
                             f"{list(shape)}: they cannot be added", "layers",
                             {"input": list(shape), "output": list(out)})
        return shape

    def multiply_adds(self, shape: Shape) -> int:
        return self.block_multiply_adds(shape) + math.prod(shape)  # and the sum


AnyLayer = Annotated[Dense | Conv1D | Conv2D | MaxPool1D | MaxPool2D | AvgPool1D | AvgPool2D
                     | GlobalAvgPool | GlobalMaxPool | Flatten | Reshape | Dropout | BatchNorm
                     | SimpleRNN | LSTM | GRU | Embedding | Activation | RepeatVector
                     | LayerNorm | UpSample2D | Conv2DTranspose | TimeDistributed
                     | PositionalEmbedding | MultiHeadAttention | Residual,
                     Field(discriminator="type")]
TimeDistributed.model_rebuild()
Residual.model_rebuild()


LAYER_TYPES: dict[str, type[Layer]] = {type_name(cls): cls
                                       for cls in get_args(get_args(AnyLayer)[0])}
