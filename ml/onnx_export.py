"""ONNX export from the spec and canonical weights: one graph builder per layer type,
activation and combination, registered in `ml.registry.ONNX`.

Because the canonical layout is shared, the same exporter serves models trained by either
framework; the publish step checks every export against the native model before serving it.
The preprocessing is folded into the graph, so ONNX Runtime takes raw features.
"""

import math
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ml import spec as S
from ml.catalog import LEAKY_RELU_SLOPE
from ml.datasets import Preprocessing
from ml.registry import ONNX

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "input", "output"
# A layer's canonical weights, by the names its spec class gives them.
Weights = dict[str, np.ndarray]


@dataclass
class GraphBuilder:
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    counter: int = 0

    def name(self, hint: str) -> str:
        self.counter += 1
        return f"{hint}_{self.counter}"

    def constant(self, hint: str, value: np.ndarray) -> str:
        value = np.asarray(value)
        if value.dtype == np.float64:
            value = value.astype(np.float32)
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs: Any) -> str:
        output = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [output], **attrs))
        return output


def _scalar(g: GraphBuilder, value: float) -> str:
    return g.constant("scalar", np.array(value, np.float32))


ONNX.activations.add({
    "identity": lambda g, x: x,
    "exponential": lambda g, x: g.op("Exp", [x]),
    "reciprocal": lambda g, x: g.op("Reciprocal", [x]),
    "square": lambda g, x: g.op("Mul", [x, x]),
    "logistic": lambda g, x: g.op("Sigmoid", [x]),
    "softmax": lambda g, x: g.op("Softmax", [x], axis=-1),
    "gauss": lambda g, x: g.op("Exp", [g.op("Neg", [g.op("Mul", [x, x])])]),
    "sine": lambda g, x: g.op("Sin", [x]),
    "cosine": lambda g, x: g.op("Cos", [x]),
    "elliott": lambda g, x: g.op("Div", [x, g.op("Add", [g.op("Abs", [x]), _scalar(g, 1.0)])]),
    "tanh": lambda g, x: g.op("Tanh", [x]),
    "arctan": lambda g, x: g.op("Mul", [g.op("Atan", [x]), _scalar(g, 2 / math.pi)]),
    "relu": lambda g, x: g.op("Relu", [x]),
    "leaky_relu": lambda g, x: g.op("LeakyRelu", [x], alpha=LEAKY_RELU_SLOPE),
    "elu": lambda g, x: g.op("Elu", [x], alpha=1.0),
    "selu": lambda g, x: g.op("Selu", [x]),
    # exact GELU, x·Φ(x) = x (1 + erf(x/√2)) / 2 (the Gelu op needs opset 20)
    "gelu": lambda g, x: g.op("Mul", [g.op("Mul", [x, _scalar(g, 0.5)]), g.op(
        "Add", [g.op("Erf", [g.op("Div", [x, _scalar(g, math.sqrt(2))])]), _scalar(g, 1.0)])]),
    "softplus": lambda g, x: g.op("Softplus", [x]),
    "silu": lambda g, x: g.op("Mul", [x, g.op("Sigmoid", [x])]),
})


def _squared_distances(g: GraphBuilder, x: str, centers: np.ndarray) -> str:
    # x [..., f] → [..., f, 1] − centers [f, units] → squared, summed over f → [..., units]
    diff = g.op("Sub", [g.op("Unsqueeze", [x, g.constant("axes", np.array([-1]))]),
                        g.constant("centers", centers)])
    return g.op("ReduceSum", [g.op("Mul", [diff, diff]), g.constant("axes", np.array([-2]))],
                keepdims=0)


def _radial(g: GraphBuilder, x: str, w: dict[str, np.ndarray], fan_in: int,
            altitude: np.ndarray | None) -> str:
    # The weights are constants here, so −b² and f·log|a| are computed once, in numpy.
    net = g.op("Mul", [_squared_distances(g, x, w["centers"]),
                       g.constant("neg_b2", -np.square(w["widths"]))])
    if altitude is not None:
        net = g.op("Add", [net, g.constant("f_log_a", fan_in * np.log(np.abs(altitude)))])
    return net


ONNX.combinations.add({
    # Σᵢ xᵢ for every unit: a product with ones
    "additive": lambda g, x, w, f, u: g.op("MatMul", [x, g.constant(
        "ones", np.ones((f, u), np.float32))]),
    "linear": lambda g, x, w, f, u: _bias(g, g.op("MatMul", [x, g.constant("kernel",
                                                                         w["kernel"])]), w),
    "eqslopes": lambda g, x, w, f, u: _bias(g, g.op("MatMul", [x, g.constant(
        "kernel", w["kernel"].reshape(f, 1))]), w),
    "xradial": lambda g, x, w, f, u: _radial(g, x, w, f, w["altitudes"]),
    "ehradial": lambda g, x, w, f, u: _radial(g, x, w, f, None),
    "evradial": lambda g, x, w, f, u: _radial(g, x, w, f, w["widths"]),
    "ewradial": lambda g, x, w, f, u: _radial(g, x, w, f, w["altitudes"]),
    "eqradial": lambda g, x, w, f, u: _radial(g, x, w, f, None),
})


def _bias(g: GraphBuilder, x: str, w: dict[str, np.ndarray]) -> str:
    return g.op("Add", [x, g.constant("bias", w["bias"])]) if "bias" in w else x


def _activate(g: GraphBuilder, layer: S.Layer, x: str) -> str:
    activated: str = ONNX.activations[layer.output_activation or "identity"](g, x)
    return activated


@ONNX.layers(S.Dense)
def _dense(g: GraphBuilder, layer: S.Dense, x: str, w: Weights, in_shape: S.Shape) -> str:
    # Acts on the last axis, like Keras Dense and torch Linear: [..., f] → [..., units]
    net = ONNX.combinations[layer.combination](g, x, w, in_shape[-1], layer.units)
    return _activate(g, layer, net)


def _channels_first(g: GraphBuilder, x: str, rank: int) -> str:
    return g.op("Transpose", [x], perm=[0, rank + 1, *range(1, rank + 1)])


def _channels_last(g: GraphBuilder, x: str, rank: int) -> str:
    return g.op("Transpose", [x], perm=[0, *range(2, rank + 2), 1])


def _pads(in_shape: S.Shape, window: S.Shape, strides: S.Shape, dilation: S.Shape,
          padding: str) -> list[int]:
    """ONNX pads [begin…, end…] for Keras's 'same' (the extra cell at the end)."""
    if padding != "same":
        return [0] * (2 * len(window))
    pads = S.same_padding(in_shape[:-1], window, strides, dilation)
    return [before for before, _ in pads] + [after for _, after in pads]


@ONNX.layers(S.Conv, ranks=(1, 2))
def _conv(g: GraphBuilder, layer: S.Conv, x: str, w: Weights, in_shape: S.Shape) -> str:
    rank = layer.rank
    window = layer._tuple(layer.kernel_size, "kernel_size")
    strides = layer._tuple(layer.strides, "strides")
    dilation = layer._tuple(layer.dilation, "dilation")
    # canonical kernel [*window, in, filters] → ONNX [filters, in, *window]
    kernel = np.transpose(w["kernel"], (rank + 1, rank, *range(rank)))
    inputs = [_channels_first(g, x, rank), g.constant("kernel", np.ascontiguousarray(kernel))]
    if "bias" in w:
        inputs.append(g.constant("bias", w["bias"]))
    net = g.op("Conv", inputs, kernel_shape=list(window), strides=list(strides),
               dilations=list(dilation), pads=_pads(in_shape, window, strides, dilation,
                                                    layer.padding))
    return _activate(g, layer, _channels_last(g, net, rank))


@ONNX.layers(S.ConvTranspose, ranks=(2,))
def _conv_transpose(g: GraphBuilder, layer: S.ConvTranspose, x: str, w: Weights,
                    in_shape: S.Shape) -> str:
    rank = layer.rank
    window = layer._tuple(layer.kernel_size, "kernel_size")
    strides = layer._tuple(layer.strides, "strides")
    out = layer.output_shape(in_shape)[:-1]
    # From the full output, (n − 1)·s + k positions: Keras's same crops the odd cell at the
    # end; its valid with a window smaller than the strides extends the end (output_padding).
    full = [(n - 1) * s + k for n, k, s in zip(in_shape[:-1], window, strides, strict=True)]
    begins = [max(f - o, 0) // 2 for o, f in zip(out, full, strict=True)]
    ends = [max(f - o, 0) - b for o, f, b in zip(out, full, begins, strict=True)]
    # canonical kernel [*window, filters, in] → ONNX [in, filters, *window]
    kernel = np.transpose(w["kernel"], (rank + 1, rank, *range(rank)))
    inputs = [_channels_first(g, x, rank), g.constant("kernel", np.ascontiguousarray(kernel))]
    if "bias" in w:
        inputs.append(g.constant("bias", w["bias"]))
    net = g.op("ConvTranspose", inputs, kernel_shape=list(window), strides=list(strides),
               pads=begins + ends,
               output_padding=[max(o - f, 0) for o, f in zip(out, full, strict=True)])
    return _activate(g, layer, _channels_last(g, net, rank))


@ONNX.layers(S.UpSample, ranks=(2,))
def _upsample(g: GraphBuilder, layer: S.UpSample, x: str, w: Weights, in_shape: S.Shape) -> str:
    # [batch, h, w, c] → [batch, h, 1, w, 1, c], broadcast to [batch, h, s₁, w, s₂, c], then
    # merged: each value repeated, exactly as nearest-neighbour upsampling by whole factors.
    factors = layer._tuple(layer.size, "size")
    spread = g.op("Unsqueeze", [x, g.constant("axes", np.arange(2, 2 * layer.rank + 1, 2))])
    repeats = [1, *(v for n, f in zip(in_shape[:-1], factors, strict=True) for v in (1, f)), 1]
    tiled = g.op("Expand", [spread, g.constant("shape", np.array(repeats))])
    return g.op("Reshape", [tiled, g.constant("shape", np.array(
        [-1, *layer.output_shape(in_shape)]))])


def _pool(op: str, g: GraphBuilder, layer: S.Pool, x: str, w: Weights, in_shape: S.Shape,
          **attrs: Any) -> str:
    window, strides = layer.window()
    pads = _pads(in_shape, window, strides, (1,) * layer.rank, layer.padding)
    net = g.op(op, [_channels_first(g, x, layer.rank)], kernel_shape=list(window),
               strides=list(strides), pads=pads, **attrs)
    return _channels_last(g, net, layer.rank)


ONNX.layers.register(S.MaxPool, partial(_pool, "MaxPool"), ranks=(1, 2))
# Average over the cells inside the input only, as Keras.
ONNX.layers.register(S.AvgPool, partial(_pool, "AveragePool", count_include_pad=0),
                     ranks=(1, 2))


def _global_pool(op: str, g: GraphBuilder, layer: S.GlobalPool, x: str, w: Weights,
                 in_shape: S.Shape) -> str:
    return g.op(op, [x], axes=list(range(1, len(in_shape))), keepdims=0)


ONNX.layers.register(S.GlobalMaxPool, partial(_global_pool, "ReduceMax"))
ONNX.layers.register(S.GlobalAvgPool, partial(_global_pool, "ReduceMean"))


@ONNX.layers(S.BatchNorm)
def _batchnorm(g: GraphBuilder, layer: S.BatchNorm, x: str, w: Weights, in_shape: S.Shape) -> str:
    # Inference uses the running statistics: an affine map on the last axis.
    scale = w["gamma"] / np.sqrt(w["moving_variance"] + layer.epsilon)
    shift = w["beta"] - w["moving_mean"] * scale
    return g.op("Add", [g.op("Mul", [x, g.constant("scale", scale.astype(np.float32))]),
                        g.constant("shift", shift.astype(np.float32))])


@ONNX.layers(S.LayerNorm)
def _layernorm(g: GraphBuilder, layer: S.LayerNorm, x: str, w: Weights, in_shape: S.Shape) -> str:
    return g.op("LayerNormalization", [x, g.constant("gamma", w["gamma"]),
                                       g.constant("beta", w["beta"])],
                axis=-1, epsilon=layer.epsilon)


@ONNX.layers(S.RepeatVector)
def _repeat_vector(g: GraphBuilder, layer: S.RepeatVector, x: str, w: Weights,
                   in_shape: S.Shape) -> str:
    # [batch, features] → [batch, 1, features], broadcast to [batch, n, features]
    spread = g.op("Unsqueeze", [x, g.constant("axes", np.array([1]))])
    return g.op("Expand", [spread, g.constant("shape", np.array([1, layer.n, 1]))])


def _gates(matrix: np.ndarray, order: list[int], units: int) -> np.ndarray:
    return np.concatenate([matrix[..., i * units:(i + 1) * units] for i in order], axis=-1)


def _recurrent(op: str, order: list[int], g: GraphBuilder, layer: S.Recurrent, x: str,
               w: Weights, in_shape: S.Shape, **attrs: Any) -> str:
    """ONNX's RNN, LSTM or GRU op; `order` gives ONNX's gate blocks as indices into Keras's."""
    units = layer.units
    kernels, recurrents, biases = [], [], []
    for direction in layer.directions:
        kernels.append(_gates(w[f"{direction}.kernel"], order, units).T)  # [gates·u, in]
        recurrents.append(_gates(w[f"{direction}.recurrent_kernel"], order, units).T)
        bias = w[f"{direction}.bias"]
        if bias.ndim == 2:  # GRU: the input bias and the recurrent bias (reset after)
            biases.append(np.concatenate([_gates(bias[0], order, units),
                                          _gates(bias[1], order, units)]))
        else:  # one bias; ONNX adds a recurrent bias, zero here
            biases.append(np.concatenate([_gates(bias, order, units), np.zeros_like(bias)]))
    steps_first = g.op("Transpose", [x], perm=[1, 0, 2])  # [steps, batch, features]
    outputs = [g.name("sequence"), g.name("final")]
    g.nodes.append(helper.make_node(
        op, [steps_first, g.constant("W", np.stack(kernels)),
             g.constant("R", np.stack(recurrents)), g.constant("B", np.stack(biases))],
        outputs, hidden_size=units,
        direction="bidirectional" if layer.bidirectional else "forward", **attrs))
    summed = layer.bidirectional and layer.merge_mode == "sum"
    if layer.return_sequences:
        # [steps, directions, batch, units] → [batch, steps, directions·units] or, summed,
        # [batch, steps, units]
        sequence = g.op("Transpose", [outputs[0]], perm=[2, 0, 1, 3])
        if summed:
            return g.op("ReduceSum", [sequence, g.constant("axes", np.array([2]))], keepdims=0)
        return g.op("Reshape", [sequence, g.constant("shape", np.array([0, 0, -1]))])
    if summed:  # [directions, batch, units] → [batch, units]
        return g.op("ReduceSum", [outputs[1], g.constant("axes", np.array([0]))], keepdims=0)
    final = g.op("Transpose", [outputs[1]], perm=[1, 0, 2])  # [batch, directions, units]
    return g.op("Reshape", [final, g.constant("shape", np.array([0, -1]))])


ONNX.layers.register(S.SimpleRNN, partial(_recurrent, "RNN", [0]))
# Keras's LSTM gates i, f, c, o are ONNX's i, o, f, c; GRU's z, r, h are the same in both.
ONNX.layers.register(S.LSTM, partial(_recurrent, "LSTM", [0, 3, 1, 2]))
ONNX.layers.register(S.GRU, partial(_recurrent, "GRU", [0, 1, 2], linear_before_reset=1))


@ONNX.layers(S.Embedding)
def _embedding(g: GraphBuilder, layer: S.Embedding, x: str, w: Weights, in_shape: S.Shape) -> str:
    ids = g.op("Cast", [x], to=TensorProto.INT64)
    return g.op("Gather", [g.constant("embeddings", w["embeddings"]), ids], axis=0)


@ONNX.layers(S.Reshape)
def _reshape(g: GraphBuilder, layer: S.Reshape, x: str, w: Weights, in_shape: S.Shape) -> str:
    return g.op("Reshape", [x, g.constant("shape", np.array([-1, *layer.target_shape]))])


@ONNX.layers(S.Flatten)
def _flatten(g: GraphBuilder, layer: S.Flatten, x: str, w: Weights, in_shape: S.Shape) -> str:
    return g.op("Flatten", [x], axis=1)


@ONNX.layers(S.Dropout)
def _dropout(g: GraphBuilder, layer: S.Dropout, x: str, w: Weights, in_shape: S.Shape) -> str:
    return x  # inference: identity


@ONNX.layers(S.Activation)
def _activation(g: GraphBuilder, layer: S.Activation, x: str, w: Weights,
                in_shape: S.Shape) -> str:
    return _activate(g, layer, x)


@ONNX.layers(S.PositionalEmbedding)
def _positional_embedding(g: GraphBuilder, layer: S.PositionalEmbedding, x: str, w: Weights,
                          in_shape: S.Shape) -> str:
    return g.op("Add", [x, g.constant("positions", w["embeddings"])])


@ONNX.layers(S.MultiHeadAttention)
def _multi_head_attention(g: GraphBuilder, layer: S.MultiHeadAttention, x: str, w: Weights,
                          in_shape: S.Shape) -> str:
    steps, features = in_shape
    heads, size = layer.num_heads, layer.head_size(in_shape)

    def project(name: str) -> str:
        # [batch, steps, features] · [features, heads·key_dim] → [batch, heads, steps, key_dim]
        kernel = w[f"{name}.kernel"].reshape(features, heads * size)
        bias = {"bias": w[f"{name}.bias"].reshape(-1)} if f"{name}.bias" in w else {}
        flat = _bias(g, g.op("MatMul", [x, g.constant("kernel", kernel)]), bias)
        split = g.op("Reshape", [flat, g.constant("shape", np.array([0, 0, heads, size]))])
        return g.op("Transpose", [split], perm=[0, 2, 1, 3])

    # Keras scales the queries by 1/√key_dim before the product.
    query = g.op("Mul", [project("query"), _scalar(g, 1 / math.sqrt(size))])
    keys = g.op("Transpose", [project("key")], perm=[0, 1, 3, 2])
    scores = g.op("MatMul", [query, keys])  # [batch, heads, steps (queries), steps (keys)]
    if layer.causal:  # a key after the query: Keras's large negative before the softmax
        later = np.triu(np.ones((steps, steps), np.float32), k=1) * np.float32(-1e9)
        scores = g.op("Add", [scores, g.constant("causal_mask", later)])
    attended = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), project("value")])
    merged = g.op("Reshape", [g.op("Transpose", [attended], perm=[0, 2, 1, 3]),
                              g.constant("shape", np.array([0, 0, heads * size]))])
    kernel = w["attention_output.kernel"].reshape(heads * size, features)
    bias = ({"bias": w["attention_output.bias"]} if "attention_output.bias" in w else {})
    return _bias(g, g.op("MatMul", [merged, g.constant("kernel", kernel)]), bias)


def _weights_under(weights: Weights, prefix: str) -> Weights:
    """The weights named `prefix…`, without the prefix."""
    return {name[len(prefix):]: value for name, value in weights.items()
            if name.startswith(prefix)}


def _block(g: GraphBuilder, layer: S.Nested, x: str, w: Weights, in_shape: S.Shape) -> str:
    """A nested block's layers, each with its activation, from the shape they first read."""
    for member, shape in zip(layer.members(), layer.member_shapes(in_shape), strict=False):
        x = ONNX.layers[member.layer](g, member.layer, x, _weights_under(w, member.prefix),
                                      shape)
    return x


@ONNX.layers(S.TimeDistributed)
def _time_distributed(g: GraphBuilder, layer: S.TimeDistributed, x: str, w: Weights,
                      in_shape: S.Shape) -> str:
    # [batch, steps, *step] → [batch·steps, *step], the block, → [batch, steps, *output]
    step = layer.inner_shape(in_shape)
    folded = g.op("Reshape", [x, g.constant("shape", np.array([-1, *step]))])
    out = _block(g, layer, folded, w, step)
    return g.op("Reshape", [out, g.constant("shape", np.array(
        [-1, *layer.output_shape(in_shape)]))])


@ONNX.layers(S.Residual)
def _residual(g: GraphBuilder, layer: S.Residual, x: str, w: Weights, in_shape: S.Shape) -> str:
    return g.op("Add", [x, _block(g, layer, x, w, in_shape)])


# The registry's tables under the names the tests have long used.
LAYER_BUILDERS, ACTIVATIONS, COMBINATIONS = ONNX.layers, ONNX.activations, ONNX.combinations


def export(model_spec: S.ModelSpec, weights: dict[str, np.ndarray],
           preprocessing: Preprocessing | None) -> onnx.ModelProto:
    g = GraphBuilder()
    x = INPUT_NAME
    if preprocessing is not None and preprocessing.method != "none":
        x = g.op("Sub", [x, g.constant("shift", preprocessing.shift)])
        x = g.op("Div", [x, g.constant("scale", preprocessing.scale)])
    shape: S.Shape = tuple(model_spec.input.shape)
    for index, layer in enumerate(model_spec.layers):
        x = ONNX.layers[layer](g, layer, x, _weights_under(weights, f"layers.{index}."), shape)
        shape = layer.output_shape(shape)
    g.nodes.append(helper.make_node("Identity", [x], [OUTPUT_NAME]))
    out_shape = S.analyze(model_spec).output_shape
    graph = helper.make_graph(
        g.nodes, model_spec.name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT,
                                       ["batch", *model_spec.input.shape])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", *out_shape])],
        initializer=g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="capas")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
