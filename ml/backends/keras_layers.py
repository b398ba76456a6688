"""Keras 3 builders for every spec layer type, activation, combination and initializer,
registered in `ml.registry.KERAS`.

Each builder returns the layer without its activation: the model applies the activation as
a separate layer, so the last layer's logits are one tensor away. Custom activations and the
combination layer are registered as serializable, so a saved `.keras` file loads with
`safe_mode=True`.
"""

import math
import os
from collections.abc import Callable
from typing import Any, TypeVar

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras as keras  # noqa: E402  (exported: the backend is set before it loads)
from keras import ops  # noqa: E402

from ml import spec as S  # noqa: E402
from ml.catalog import LEAKY_RELU_SLOPE  # noqa: E402
from ml.registry import KERAS  # noqa: E402

# Keras ships no types: to mypy its tensors, like all of Keras, are `Any`.
Tensor = Any

Registered = TypeVar("Registered")


def _serializable(registered: Registered) -> Registered:
    """Registered with Keras by name ("capas>gauss"), so a saved model loads in safe mode."""
    same: Registered = keras.saving.register_keras_serializable(package="capas")(registered)
    return same

# Keras's own activations by its names; the others are functions saved by name ("capas>gauss").
KERAS.activations.add({
    "identity": "linear", "exponential": "exponential", "logistic": "sigmoid",
    "softmax": "softmax", "tanh": "tanh", "relu": "relu", "elu": "elu", "selu": "selu",
    "softplus": "softplus", "silu": "silu"})


@KERAS.activations("reciprocal")
@_serializable
def reciprocal(g: Tensor) -> Tensor:
    return ops.reciprocal(g)


@KERAS.activations("square")
@_serializable
def square(g: Tensor) -> Tensor:
    return ops.square(g)


@KERAS.activations("gauss")
@_serializable
def gauss(g: Tensor) -> Tensor:
    return ops.exp(-ops.square(g))


@KERAS.activations("sine")
@_serializable
def sine(g: Tensor) -> Tensor:
    return ops.sin(g)


@KERAS.activations("cosine")
@_serializable
def cosine(g: Tensor) -> Tensor:
    return ops.cos(g)


@KERAS.activations("elliott")
@_serializable
def elliott(g: Tensor) -> Tensor:
    return g / (1 + ops.abs(g))


@KERAS.activations("arctan")
@_serializable
def arctan(g: Tensor) -> Tensor:
    return ops.arctan(g) * (2 / math.pi)


@KERAS.activations("leaky_relu")
@_serializable
def leaky_relu(g: Tensor) -> Tensor:
    return ops.leaky_relu(g, negative_slope=LEAKY_RELU_SLOPE)


@KERAS.activations("gelu")
@_serializable
def exact_gelu(g: Tensor) -> Tensor:
    return ops.gelu(g, approximate=False)


# Keras knows every initializer of the catalog by the same name and formula.
KERAS.initializers.add({name: name for name in (
    "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
    "lecun_normal", "orthogonal", "random_normal", "random_uniform", "zeros", "ones")})


def initializer(name: str) -> str:
    keras_name: str = KERAS.initializers[name]
    return keras_name


def _radial(x: Tensor, centers: Tensor) -> Tensor:
    # x [..., f], centers [f, units] → Σᵢ (wᵢⱼ − xᵢ)² [..., units]
    return ops.sum(ops.square(ops.expand_dims(x, -1) - centers), axis=-2)


KERAS.combinations.add({
    "additive": lambda x, w: ops.sum(x, axis=-1, keepdims=True),
    "linear": lambda x, w: ops.matmul(x, w["kernel"]) + w.get("bias", 0.0),
    "eqslopes": lambda x, w: ops.expand_dims(ops.matmul(x, w["kernel"]), -1)
    + w.get("bias", 0.0),
    "xradial": lambda x, w: x.shape[-1] * ops.log(ops.abs(w["altitudes"]))
    - ops.square(w["widths"]) * _radial(x, w["centers"]),
    "ehradial": lambda x, w: -ops.square(w["widths"]) * _radial(x, w["centers"]),
    "evradial": lambda x, w: x.shape[-1] * ops.log(ops.abs(w["widths"]))
    - ops.square(w["widths"]) * _radial(x, w["centers"]),
    "ewradial": lambda x, w: x.shape[-1] * ops.log(ops.abs(w["altitudes"]))
    - ops.square(w["widths"]) * _radial(x, w["centers"]),
    "eqradial": lambda x, w: -ops.square(w["widths"]) * _radial(x, w["centers"]),
})


@_serializable
class Combination(keras.layers.Layer):
    """A dense layer with one of the workshop's combination functions (not `linear`)."""

    def __init__(self, units: int, combination: str, use_bias: bool = True,
                 initializers: dict[str, str] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.units, self.combination, self.use_bias = units, combination, use_bias
        self.initializers = initializers or {}
        self.weight_by_name: dict[str, keras.Variable] = {}

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        layer = S.Dense(type="dense", units=self.units, combination=self.combination,
                        use_bias=self.use_bias, **self.initializers)
        features = input_shape[-1]
        if features is None:
            raise ValueError(f"{self.name} needs inputs whose last axis is known")
        for name, weight in layer.weights((features,)).items():
            self.weight_by_name[name] = self.add_weight(
                shape=weight.shape, initializer=initializer(weight.initializer), name=name)

    def call(self, x: Tensor) -> Tensor:
        net = KERAS.combinations[self.combination](x, self.weight_by_name)
        if self.combination == "additive":  # one sum, the same for every unit
            net = ops.repeat(net, self.units, axis=-1)
        return net

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units, "combination": self.combination,
                "use_bias": self.use_bias, "initializers": self.initializers}


@KERAS.layers(S.Dense)
def _dense(layer: S.Dense, in_shape: S.Shape) -> keras.layers.Layer:
    if layer.combination == "linear":
        return keras.layers.Dense(layer.units, use_bias=layer.use_bias,
                                  kernel_initializer=initializer(layer.kernel_initializer),
                                  bias_initializer=initializer(layer.bias_initializer))
    initializers = {k: getattr(layer, k) for k in ("kernel_initializer", "bias_initializer",
                                                   "width_initializer", "altitude_initializer")}
    return Combination(layer.units, layer.combination, layer.use_bias, initializers)


@KERAS.layers(S.Conv, ranks=(1, 2))
def _conv(layer: S.Conv, in_shape: S.Shape) -> keras.layers.Layer:
    conv = getattr(keras.layers, f"Conv{layer.rank}D")
    return conv(layer.filters, layer.kernel_size, strides=layer.strides, padding=layer.padding,
                dilation_rate=layer.dilation, use_bias=layer.use_bias,
                kernel_initializer=initializer(layer.kernel_initializer),
                bias_initializer=initializer(layer.bias_initializer))


@KERAS.layers(S.ConvTranspose, ranks=(2,))
def _conv_transpose(layer: S.ConvTranspose, in_shape: S.Shape) -> keras.layers.Layer:
    conv = getattr(keras.layers, f"Conv{layer.rank}DTranspose")
    return conv(layer.filters, layer.kernel_size, strides=layer.strides, padding=layer.padding,
                use_bias=layer.use_bias,
                kernel_initializer=initializer(layer.kernel_initializer),
                bias_initializer=initializer(layer.bias_initializer))


@KERAS.layers(S.UpSample, ranks=(2,))
def _upsample(layer: S.UpSample, in_shape: S.Shape) -> keras.layers.Layer:
    return getattr(keras.layers, f"UpSampling{layer.rank}D")(size=layer.size,
                                                             interpolation="nearest")


def _pool(kind: str) -> Callable[[S.Pool, S.Shape], keras.layers.Layer]:
    def build(layer: S.Pool, in_shape: S.Shape) -> keras.layers.Layer:
        pool = getattr(keras.layers, f"{kind}Pooling{layer.rank}D")
        return pool(pool_size=layer.pool_size, strides=layer.strides, padding=layer.padding)
    return build


KERAS.layers.register(S.MaxPool, _pool("Max"), ranks=(1, 2))
KERAS.layers.register(S.AvgPool, _pool("Average"), ranks=(1, 2))


def _global_pool(kind: str) -> Callable[[S.GlobalPool, S.Shape], keras.layers.Layer]:
    def build(layer: S.GlobalPool, in_shape: S.Shape) -> keras.layers.Layer:
        # The spatial rank is the input's: every axis but the channels.
        return getattr(keras.layers, f"Global{kind}Pooling{len(in_shape) - 1}D")()
    return build


KERAS.layers.register(S.GlobalMaxPool, _global_pool("Max"))
KERAS.layers.register(S.GlobalAvgPool, _global_pool("Average"))


@KERAS.layers(S.Flatten)
def _flatten(layer: S.Flatten, in_shape: S.Shape) -> keras.layers.Layer:
    return keras.layers.Flatten()


@KERAS.layers(S.Reshape)
def _reshape(layer: S.Reshape, in_shape: S.Shape) -> keras.layers.Layer:
    return keras.layers.Reshape(tuple(layer.target_shape))


@KERAS.layers(S.Dropout)
def _dropout(layer: S.Dropout, in_shape: S.Shape) -> keras.layers.Layer:
    return keras.layers.Dropout(layer.rate)


@KERAS.layers(S.BatchNorm)
def _batchnorm(layer: S.BatchNorm, in_shape: S.Shape) -> keras.layers.Layer:
    return keras.layers.BatchNormalization(axis=-1, momentum=layer.momentum,
                                           epsilon=layer.epsilon)


@KERAS.layers(S.LayerNorm)
def _layernorm(layer: S.LayerNorm, in_shape: S.Shape) -> keras.layers.Layer:
    return keras.layers.LayerNormalization(axis=-1, epsilon=layer.epsilon)


@KERAS.layers(S.RepeatVector)
def _repeat_vector(layer: S.RepeatVector, in_shape: S.Shape) -> keras.layers.Layer:
    return keras.layers.RepeatVector(layer.n)


def _recurrent(rnn: Callable[..., keras.layers.Layer], layer: S.Recurrent,
               **options: Any) -> keras.layers.Layer:
    cell = rnn(layer.units, return_sequences=layer.return_sequences,
               kernel_initializer=initializer(layer.kernel_initializer),
               recurrent_initializer=initializer(layer.recurrent_initializer),
               bias_initializer=initializer(layer.bias_initializer), **options)
    return (keras.layers.Bidirectional(cell, merge_mode=layer.merge_mode) if layer.bidirectional
            else cell)


@KERAS.layers(S.SimpleRNN)
def _simple_rnn(layer: S.SimpleRNN, in_shape: S.Shape) -> keras.layers.Layer:
    return _recurrent(keras.layers.SimpleRNN, layer)


@KERAS.layers(S.LSTM)
def _lstm(layer: S.LSTM, in_shape: S.Shape) -> keras.layers.Layer:
    return _recurrent(keras.layers.LSTM, layer, unit_forget_bias=layer.unit_forget_bias)


@KERAS.layers(S.GRU)
def _gru(layer: S.GRU, in_shape: S.Shape) -> keras.layers.Layer:
    return _recurrent(keras.layers.GRU, layer)  # reset_after, the canonical layout


@KERAS.layers(S.Embedding)
def _embedding(layer: S.Embedding, in_shape: S.Shape) -> keras.layers.Layer:
    return keras.layers.Embedding(
        layer.input_dim, layer.output_dim,
        embeddings_initializer=initializer(layer.embeddings_initializer))


@_serializable
class PositionalEmbedding(keras.layers.Layer):
    """A learned vector per time step added to the input: x + p, p [timesteps, features]."""

    def __init__(self, embeddings_initializer: str = "glorot_uniform", **kwargs: Any):
        super().__init__(**kwargs)
        self.embeddings_initializer = embeddings_initializer

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.embeddings = self.add_weight(shape=tuple(input_shape[1:]), name="embeddings",
                                          initializer=self.embeddings_initializer)

    def call(self, x: Tensor) -> Tensor:
        return x + self.embeddings

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "embeddings_initializer": self.embeddings_initializer}


@KERAS.layers(S.PositionalEmbedding)
def _positional_embedding(layer: S.PositionalEmbedding, in_shape: S.Shape) -> keras.layers.Layer:
    return PositionalEmbedding(initializer(layer.embeddings_initializer))


@_serializable
class SelfAttention(keras.layers.MultiHeadAttention):
    """Keras's MultiHeadAttention with its input as query, key and value, and its causal mask
    fixed when built: one input, as every layer of a spec has."""

    def __init__(self, causal: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.causal = causal

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        super().build(input_shape, input_shape)

    def call(self, x: Tensor, training: bool | None = None) -> Tensor:
        return super().call(x, x, training=training, use_causal_mask=self.causal)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]
                             ) -> tuple[int | None, ...]:
        return input_shape

    def compute_output_spec(self, x: Tensor, training: bool | None = None) -> Tensor:
        return keras.KerasTensor(x.shape, dtype=self.compute_dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "causal": self.causal}


@KERAS.layers(S.MultiHeadAttention)
def _multi_head_attention(layer: S.MultiHeadAttention, in_shape: S.Shape) -> keras.layers.Layer:
    return SelfAttention(causal=layer.causal, num_heads=layer.num_heads,
                         key_dim=layer.head_size(in_shape), dropout=layer.dropout,
                         use_bias=layer.use_bias,
                         kernel_initializer=initializer(layer.kernel_initializer),
                         bias_initializer=initializer(layer.bias_initializer))


def _sequential(layer: S.Nested, in_shape: S.Shape, activate_last: bool) -> keras.Sequential:
    """A block's layers, each followed by its activation (but the last one's where the
    wrapping layer's own activation is its last layer's, applied by the model)."""
    members = layer.members()
    parts = []
    for index, (member, shape) in enumerate(zip(members, layer.member_shapes(in_shape),
                                                strict=False)):
        built = KERAS.layers[member.layer](member.layer, shape)
        if built is not None:
            parts.append(built)
        activation = member.layer.output_activation
        if activation not in (None, "identity") and (activate_last or index < len(members) - 1):
            parts.append(keras.layers.Activation(KERAS.activations[activation]))
    return keras.Sequential(parts or [keras.layers.Identity()])


@_serializable
class FoldedTimeDistributed(keras.layers.TimeDistributed):
    """Keras's TimeDistributed with the time steps folded into the batch: the block runs once
    on [batch·timesteps, ...], as in torch and the ONNX graph, where Keras's own runs it once a
    step; a batchnorm inside then takes its statistics over every step."""

    def call(self, inputs: Tensor, training: bool | None = None, mask: Tensor = None) -> Tensor:
        steps = inputs.shape[1]
        outputs = self.layer(ops.reshape(inputs, (-1, *inputs.shape[2:])), training=training)
        return ops.reshape(outputs, (-1, steps, *outputs.shape[1:]))


@KERAS.layers(S.TimeDistributed)
def _time_distributed(layer: S.TimeDistributed, in_shape: S.Shape) -> keras.layers.Layer:
    return FoldedTimeDistributed(_sequential(layer, layer.inner_shape(in_shape),
                                             activate_last=False))


@_serializable
class Residual(keras.layers.Wrapper):
    """x + block(x)."""

    def call(self, x: Tensor, training: bool | None = None) -> Tensor:
        return x + self.layer(x, training=training)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]
                             ) -> tuple[int | None, ...]:
        return input_shape


@KERAS.layers(S.Residual)
def _residual(layer: S.Residual, in_shape: S.Shape) -> keras.layers.Layer:
    return Residual(_sequential(layer, in_shape, activate_last=True))


@KERAS.layers(S.Activation)
def _activation(layer: S.Activation, in_shape: S.Shape) -> None:
    return None  # only its activation, which the model applies


def canonical_variables(layer: S.Layer,
                        keras_layer: keras.layers.Layer | None) -> dict[str, keras.Variable]:
    """The Keras variables of a spec layer by canonical name (`forward.kernel`, `gamma`, …)."""
    if keras_layer is None:
        return {}
    if isinstance(layer, S.Nested):
        # The block's own layers, in the order built; activations are layers of their own.
        built = iter([part for part in keras_layer.layer.layers
                      if not isinstance(part, keras.layers.Activation)])
        return {f"{member.prefix}{name}": variable for member in layer.members()
                for name, variable in canonical_variables(
                    member.layer, None if isinstance(member.layer, S.Activation)
                    else next(built)).items()}
    if isinstance(layer, S.MultiHeadAttention):  # query/kernel, …, attention_output/bias
        return {".".join(variable.path.split("/")[-2:]): variable
                for variable in keras_layer.weights}
    if isinstance(keras_layer, keras.layers.Bidirectional):
        parts = {"forward": keras_layer.forward_layer, "backward": keras_layer.backward_layer}
    elif isinstance(layer, S.Recurrent):
        parts = {"forward": keras_layer}
    else:
        parts = {"": keras_layer}
    return {(f"{prefix}." if prefix else "") + variable.path.rsplit("/", 1)[-1]: variable
            for prefix, part in parts.items() for variable in part.weights}
