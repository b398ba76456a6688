"""Keras 3 builders for every spec layer type, activation and combination.

Each builder returns the layer without its activation: the model applies the activation as
a separate layer, so the last layer's logits are one tensor away. Custom activations and the
combination layer are registered as serializable, so a saved `.keras` file loads with
`safe_mode=True`.
"""

import math
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from keras import ops  # noqa: E402

from ml import spec as S  # noqa: E402
from ml.catalog import LEAKY_RELU_SLOPE  # noqa: E402

_register = keras.saving.register_keras_serializable(package="capas")


@_register
def reciprocal(g):
    return ops.reciprocal(g)


@_register
def square(g):
    return ops.square(g)


@_register
def gauss(g):
    return ops.exp(-ops.square(g))


@_register
def sine(g):
    return ops.sin(g)


@_register
def cosine(g):
    return ops.cos(g)


@_register
def elliott(g):
    return g / (1 + ops.abs(g))


@_register
def arctan(g):
    return ops.arctan(g) * (2 / math.pi)


@_register
def leaky_relu(g):
    return ops.leaky_relu(g, negative_slope=LEAKY_RELU_SLOPE)


@_register
def exact_gelu(g):
    return ops.gelu(g, approximate=False)


ACTIVATIONS = {
    "identity": "linear",
    "exponential": "exponential",
    "reciprocal": reciprocal,
    "square": square,
    "logistic": "sigmoid",
    "softmax": "softmax",
    "gauss": gauss,
    "sine": sine,
    "cosine": cosine,
    "elliott": elliott,
    "tanh": "tanh",
    "arctan": arctan,
    "relu": "relu",
    "leaky_relu": leaky_relu,
    "elu": "elu",
    "selu": "selu",
    "gelu": exact_gelu,
    "softplus": "softplus",
    "silu": "silu",
}


def _radial(x, centers):
    # x [..., f], centers [f, units] → Σᵢ (wᵢⱼ − xᵢ)² [..., units]
    return ops.sum(ops.square(ops.expand_dims(x, -1) - centers), axis=-2)


COMBINATIONS = {
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
}


@_register
class Combination(keras.layers.Layer):
    """A dense layer with one of the workshop's combination functions (not `linear`)."""

    def __init__(self, units: int, combination: str, use_bias: bool = True,
                 initializers: dict[str, str] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.units, self.combination, self.use_bias = units, combination, use_bias
        self.initializers = initializers or {}
        self.weight_by_name: dict = {}

    def build(self, input_shape):
        layer = S.Dense(type="dense", units=self.units, combination=self.combination,
                        use_bias=self.use_bias, **self.initializers)
        for name, weight in layer.weights((input_shape[-1],)).items():
            self.weight_by_name[name] = self.add_weight(
                shape=weight.shape, initializer=weight.initializer, name=name)

    def call(self, x):
        net = COMBINATIONS[self.combination](x, self.weight_by_name)
        if self.combination == "additive":  # one sum, the same for every unit
            net = ops.repeat(net, self.units, axis=-1)
        return net

    def get_config(self):
        return {**super().get_config(), "units": self.units, "combination": self.combination,
                "use_bias": self.use_bias, "initializers": self.initializers}


def _dense(layer: S.Dense, in_shape: S.Shape):
    if layer.combination == "linear":
        return keras.layers.Dense(layer.units, use_bias=layer.use_bias,
                                  kernel_initializer=layer.kernel_initializer,
                                  bias_initializer=layer.bias_initializer)
    initializers = {k: getattr(layer, k) for k in ("kernel_initializer", "bias_initializer",
                                                   "width_initializer", "altitude_initializer")}
    return Combination(layer.units, layer.combination, layer.use_bias, initializers)


def _conv(layer: S.Conv, in_shape: S.Shape):
    cls = keras.layers.Conv1D if layer.rank == 1 else keras.layers.Conv2D
    return cls(layer.filters, layer.kernel_size, strides=layer.strides, padding=layer.padding,
               dilation_rate=layer.dilation, use_bias=layer.use_bias,
               kernel_initializer=layer.kernel_initializer,
               bias_initializer=layer.bias_initializer)


POOLS = {"maxpool1d": keras.layers.MaxPooling1D, "maxpool2d": keras.layers.MaxPooling2D,
         "avgpool1d": keras.layers.AveragePooling1D, "avgpool2d": keras.layers.AveragePooling2D}
GLOBAL_POOLS = {
    "global_avgpool": (keras.layers.GlobalAveragePooling1D, keras.layers.GlobalAveragePooling2D,
                       keras.layers.GlobalAveragePooling3D),
    "global_maxpool": (keras.layers.GlobalMaxPooling1D, keras.layers.GlobalMaxPooling2D,
                       keras.layers.GlobalMaxPooling3D),
}


def _pool(layer: S.Pool, in_shape: S.Shape):
    return POOLS[layer.type](pool_size=layer.pool_size, strides=layer.strides,
                             padding=layer.padding)


def _recurrent(layer: S.Recurrent, in_shape: S.Shape):
    cls = {"simple_rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM,
           "gru": keras.layers.GRU}[layer.type]
    extra = {"unit_forget_bias": layer.unit_forget_bias} if layer.type == "lstm" else {}
    rnn = cls(layer.units, return_sequences=layer.return_sequences,
              kernel_initializer=layer.kernel_initializer,
              recurrent_initializer=layer.recurrent_initializer,
              bias_initializer=layer.bias_initializer, **extra)
    return keras.layers.Bidirectional(rnn, merge_mode="concat") if layer.bidirectional else rnn


LAYER_BUILDERS = {
    "dense": _dense,
    "conv1d": _conv,
    "conv2d": _conv,
    "maxpool1d": _pool,
    "maxpool2d": _pool,
    "avgpool1d": _pool,
    "avgpool2d": _pool,
    "global_avgpool": lambda layer, in_shape: GLOBAL_POOLS[layer.type][len(in_shape) - 2](),
    "global_maxpool": lambda layer, in_shape: GLOBAL_POOLS[layer.type][len(in_shape) - 2](),
    "flatten": lambda layer, in_shape: keras.layers.Flatten(),
    "reshape": lambda layer, in_shape: keras.layers.Reshape(tuple(layer.target_shape)),
    "dropout": lambda layer, in_shape: keras.layers.Dropout(layer.rate),
    "batchnorm": lambda layer, in_shape: keras.layers.BatchNormalization(
        axis=-1, momentum=layer.momentum, epsilon=layer.epsilon),
    "simple_rnn": _recurrent,
    "lstm": _recurrent,
    "gru": _recurrent,
    "embedding": lambda layer, in_shape: keras.layers.Embedding(
        layer.input_dim, layer.output_dim, embeddings_initializer=layer.embeddings_initializer),
    "activation": lambda layer, in_shape: None,  # only its activation, applied by the model
}


def canonical_variables(layer: S.Layer, keras_layer) -> dict[str, object]:
    """The Keras variables of a spec layer by canonical name (`forward.kernel`, `gamma`, …)."""
    if keras_layer is None:
        return {}
    if isinstance(keras_layer, keras.layers.Bidirectional):
        parts = {"forward": keras_layer.forward_layer, "backward": keras_layer.backward_layer}
    elif isinstance(layer, S.Recurrent):
        parts = {"forward": keras_layer}
    else:
        parts = {"": keras_layer}
    return {(f"{prefix}." if prefix else "") + variable.path.rsplit("/", 1)[-1]: variable
            for prefix, part in parts.items() for variable in part.weights}
