"""ONNX export from the spec and canonical weights: one graph builder per layer type.

Because the canonical layout is shared, the same exporter serves models trained by either
framework; the publish step checks every export against the native model before serving it.
The preprocessing is folded into the graph, so ONNX Runtime takes raw features.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ml import spec as S
from ml.datasets import Preprocessing

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "input", "output"


@dataclass
class GraphBuilder:
    nodes: list = field(default_factory=list)
    initializers: list = field(default_factory=list)
    counter: int = 0

    def name(self, hint: str) -> str:
        self.counter += 1
        return f"{hint}_{self.counter}"

    def constant(self, hint: str, value: np.ndarray) -> str:
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs) -> str:
        output = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [output], **attrs))
        return output


ACTIVATIONS: dict[str, Callable[[GraphBuilder, str], str]] = {
    "identity": lambda g, x: x,
    "relu": lambda g, x: g.op("Relu", [x]),
    "tanh": lambda g, x: g.op("Tanh", [x]),
    "logistic": lambda g, x: g.op("Sigmoid", [x]),
    "softmax": lambda g, x: g.op("Softmax", [x], axis=-1),
}


def _dense(g: GraphBuilder, layer: S.Dense, x: str, weights: dict[str, np.ndarray]) -> str:
    # MatMul acts on the last axis, like Keras Dense and torch Linear: [..., in] → [..., units]
    x = g.op("MatMul", [x, g.constant("kernel", weights["kernel"])])
    if layer.use_bias:
        x = g.op("Add", [x, g.constant("bias", weights["bias"])])
    return ACTIVATIONS[layer.activation](g, x)


LAYER_BUILDERS = {
    "dense": _dense,
    "dropout": lambda g, layer, x, weights: x,  # inference: identity
    "flatten": lambda g, layer, x, weights: g.op("Flatten", [x], axis=1),
}


def export(model_spec: S.ModelSpec, weights: dict[str, np.ndarray],
           preprocessing: Preprocessing | None) -> onnx.ModelProto:
    g = GraphBuilder()
    x = INPUT_NAME
    if preprocessing is not None and preprocessing.method != "none":
        x = g.op("Sub", [x, g.constant("shift", preprocessing.shift)])
        x = g.op("Div", [x, g.constant("scale", preprocessing.scale)])
    for index, layer in enumerate(model_spec.layers):
        prefix = f"layers.{index}."
        layer_weights = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
        x = LAYER_BUILDERS[layer.type](g, layer, x, layer_weights)
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
