"""The model-definition language (spec v1): one pydantic schema class per layer type.

No framework is imported here. Each layer class states its defaults once, infers its output
shape and counts its parameters; the backends build it by its ``type`` name.
"""

import difflib
import math
from typing import Annotated, Any, ClassVar, Literal, NamedTuple, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from ml.catalog import (
    ACTIVATION_ALIASES,
    ACTIVATIONS,
    COMBINATIONS,
    INITIALIZERS,
    LOGIT_ACTIVATIONS,
    OBJECTIVES,
    OPTIMIZER_UPDATES,
)
from ml.epochs import metric_catalog
from ml.errors import SpecError, SpecIssue

Shape = tuple[int, ...]


# Names of the language are short; a longer string is no misspelling of one.
MAX_NAME_CHARS = 64
MAX_SHOWN_CHARS = 100  # of a value echoed in a message


def closest(name: str, choices) -> str:
    if len(str(name)) > MAX_NAME_CHARS:
        return ""
    match = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.5)
    return f"; did you mean '{match[0]}'?" if match else ""


def shown(value: Any) -> str:
    """`repr(value)` for a message, cut to its start if long."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN_CHARS else f"{text[:MAX_SHOWN_CHARS]}…"


def _activation_name(value: str) -> str:
    value = ACTIVATION_ALIASES.get(value, value)
    if value not in ACTIVATIONS:
        raise PydanticCustomError(
            "unknown_name",
            "unknown activation '{value}'{hint}",
            {"value": value, "hint": closest(value, [*ACTIVATIONS, *ACTIVATION_ALIASES])},
        )
    return value


def _known(kind: str, names) -> AfterValidator:
    def check(value: str) -> str:
        if value not in names:
            raise PydanticCustomError("unknown_name", "unknown {kind} '{value}'{hint}",
                                      {"kind": kind, "value": value,
                                       "hint": closest(value, names)})
        return value

    return AfterValidator(check)


NameText = Annotated[str, Field(max_length=MAX_NAME_CHARS)]
ActivationName = Annotated[NameText, AfterValidator(_activation_name)]
ObjectiveName = Annotated[NameText, _known("objective", OBJECTIVES)]
CombinationName = Annotated[NameText, _known("combination", COMBINATIONS)]
Initializer = Annotated[NameText, _known("initializer", INITIALIZERS)]
# Sizes and counts fit the 32-bit integers the frameworks take them as.
PositiveInt = Annotated[int, Field(gt=0, lt=2**31)]
PositiveFloat = Annotated[float, Field(gt=0.0)]
Probability = Annotated[float, Field(ge=0.0, lt=1.0)]


class StrictModel(BaseModel):
    # Strict: a number is a number ("12" is not 12, true is not 1), an integer an integer
    # (12.0 is not 12), and finite (JSON's 1e400 reads as infinity).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Weight(NamedTuple):
    shape: Shape
    initializer: str


class ShapeError(ValueError):
    """A layer cannot take its input: `field` names the parameter at fault, if one is."""

    def __init__(self, message: str, field: str | None = None, value: Any = None):
        super().__init__(message)
        self.field, self.value = field, value


def _dims(shape: Shape) -> str:
    return "×".join(map(str, shape))


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
    units: PositiveInt
    activation: ActivationName = "identity"
    combination: CombinationName = "linear"
    use_bias: bool = True
    kernel_initializer: Initializer = "glorot_uniform"
    bias_initializer: Initializer = "zeros"
    # Radial combinations: widths b and altitudes a start at one.
    width_initializer: Initializer = "ones"
    altitude_initializer: Initializer = "ones"

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
                raise ShapeError(f"{_dims(window)} is larger than the input "
                                 f"({_dims(shape[:-1])}) at this layer", field,
                                 getattr(self, field))
            else:
                out.append((size - extent) // s + 1)
        return tuple(out)


class Conv(Spatial):
    filters: PositiveInt
    kernel_size: IntOrPair
    strides: IntOrPair = 1
    padding: Literal["valid", "same"] = "valid"
    dilation: IntOrPair = 1
    activation: ActivationName = "identity"
    use_bias: bool = True
    kernel_initializer: Initializer = "glorot_uniform"
    bias_initializer: Initializer = "zeros"

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


class Pool(Spatial):
    pool_size: IntOrPair = 2
    strides: IntOrPair | None = None  # default: the pool size
    padding: Literal["valid", "same"] = "valid"

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
    type: Literal["flatten"]

    def output_shape(self, shape: Shape) -> Shape:
        return (math.prod(shape),)


class Reshape(Layer):
    type: Literal["reshape"]
    target_shape: Annotated[list[PositiveInt], Field(min_length=1, max_length=4)]

    def output_shape(self, shape: Shape) -> Shape:
        if math.prod(self.target_shape) != math.prod(shape):
            raise ShapeError(f"{self.target_shape} holds {math.prod(self.target_shape)} values, "
                             f"the input {list(shape)} holds {math.prod(shape)}",
                             "target_shape", self.target_shape)
        return tuple(self.target_shape)


class Dropout(Layer):
    type: Literal["dropout"]
    rate: Probability = 0.5


class BatchNorm(Layer):
    """Normalizes the last axis. Keras's convention for momentum: the running statistics
    move as `running = momentum·running + (1 − momentum)·batch` (torch's momentum is 1 − it)."""

    type: Literal["batchnorm"]
    momentum: Probability = 0.99
    epsilon: PositiveFloat = 1e-3

    def weights(self, shape: Shape) -> dict[str, Weight]:
        channels = (shape[-1],)
        return {"gamma": Weight(channels, "ones"), "beta": Weight(channels, "zeros"),
                "moving_mean": Weight(channels, "zeros"),
                "moving_variance": Weight(channels, "ones")}


class Recurrent(Layer):
    """Reads [timesteps, features]; gates in Keras's order and layout."""

    gates: ClassVar[int]
    units: PositiveInt
    return_sequences: bool = False
    bidirectional: bool = False
    kernel_initializer: Initializer = "glorot_uniform"
    recurrent_initializer: Initializer = "orthogonal"
    bias_initializer: Initializer = "zeros"

    @property
    def directions(self) -> tuple[str, ...]:
        return ("forward", "backward") if self.bidirectional else ("forward",)

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) != 2:
            hint = "; add a reshape layer" if len(shape) == 1 else ""
            raise ShapeError(f"{self.type} expects input of shape [timesteps, features], "
                             f"received {list(shape)}{hint}", None, list(shape))
        width = self.units * len(self.directions)
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
    type: Literal["simple_rnn"]
    gates: ClassVar[int] = 1


class LSTM(Recurrent):
    """Gates i, f, c, o; `unit_forget_bias` starts the forget gate's bias at one (as Keras)."""

    type: Literal["lstm"]
    gates: ClassVar[int] = 4
    unit_forget_bias: bool = True


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
    input_dim: PositiveInt
    output_dim: PositiveInt
    embeddings_initializer: Initializer = "random_uniform"

    def output_shape(self, shape: Shape) -> Shape:
        return (*shape, self.output_dim)

    def weights(self, shape: Shape) -> dict[str, Weight]:
        return {"embeddings": Weight((self.input_dim, self.output_dim),
                                     self.embeddings_initializer)}

    def multiply_adds(self, shape: Shape) -> int:
        return math.prod(self.output_shape(shape))  # a lookup: one row copied per id


class Activation(Layer):
    type: Literal["activation"]
    function: ActivationName

    @property
    def output_activation(self) -> str | None:
        return self.function


_LAYER_CLASSES = (Dense, Conv1D, Conv2D, MaxPool1D, MaxPool2D, AvgPool1D, AvgPool2D,
                  GlobalAvgPool, GlobalMaxPool, Flatten, Reshape, Dropout, BatchNorm, SimpleRNN,
                  LSTM, GRU, Embedding, Activation)
LAYER_TYPES: dict[str, type[Layer]] = {cls.model_fields["type"].annotation.__args__[0]: cls
                                       for cls in _LAYER_CLASSES}
AnyLayer = Annotated[Union[_LAYER_CLASSES], Field(discriminator="type")]  # noqa: UP007


class InputSpec(StrictModel):
    shape: Annotated[list[PositiveInt], Field(min_length=1, max_length=4)]
    dtype: Literal["float32"] = "float32"


class ModelSpec(StrictModel):
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$")]
    input: InputSpec
    layers: Annotated[list[AnyLayer], Field(min_length=1)]
    objective: ObjectiveName

    @property
    def output_activation(self) -> str | None:
        return self.layers[-1].output_activation

    @property
    def from_logits(self) -> bool:
        """Whether the last layer's activation is folded into the loss (softmax/logistic + CE).

        Both backends then train on the last layer's net input (the logits) and apply the
        activation only at inference, for numerical stability.
        """
        return LOGIT_ACTIVATIONS.get(self.output_activation or "") == self.objective

    @property
    def task(self) -> str:
        return OBJECTIVES[self.objective].task


class Optimizer(StrictModel):
    """Defaults are stated here once and passed explicitly to both frameworks."""

    type: str
    learning_rate: PositiveFloat


class SGD(Optimizer):
    type: Literal["sgd"]
    learning_rate: PositiveFloat = 0.01
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    nesterov: bool = False


class Adadelta(Optimizer):
    type: Literal["adadelta"]
    learning_rate: PositiveFloat = 1.0  # Zeiler's; Keras's default (0.001) barely moves
    rho: Probability = 0.95
    epsilon: PositiveFloat = 1e-6


class Adagrad(Optimizer):
    type: Literal["adagrad"]
    learning_rate: PositiveFloat = 0.01
    initial_accumulator_value: Annotated[float, Field(ge=0.0)] = 0.1
    epsilon: PositiveFloat = 1e-7


class RMSprop(Optimizer):
    type: Literal["rmsprop"]
    learning_rate: PositiveFloat = 0.001
    rho: Probability = 0.9
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    epsilon: PositiveFloat = 1e-7
    centered: bool = False


class Adam(Optimizer):
    type: Literal["adam"]
    learning_rate: PositiveFloat = 0.001
    beta_1: Probability = 0.9
    beta_2: Probability = 0.999
    epsilon: PositiveFloat = 1e-7


class AdamW(Adam):
    type: Literal["adamw"]
    weight_decay: Annotated[float, Field(ge=0.0)] = 0.004


OPTIMIZER_TYPES: dict[str, type[Optimizer]] = {
    cls.model_fields["type"].annotation.__args__[0]: cls
    for cls in (SGD, Adadelta, Adagrad, RMSprop, Adam, AdamW)}
AnyOptimizer = Annotated[SGD | Adadelta | Adagrad | RMSprop | Adam | AdamW,
                         Field(discriminator="type")]


class EarlyStopping(StrictModel):
    monitor: Literal["loss", "val_loss", "val_accuracy", "val_mae"] = "val_loss"
    patience: PositiveInt = 5
    min_delta: Annotated[float, Field(ge=0.0)] = 0.0


class TrainingSpec(StrictModel):
    optimizer: AnyOptimizer = Adam(type="adam")
    epochs: PositiveInt = 10
    batch_size: PositiveInt = 32
    validation_split: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2
    seed: Annotated[int, Field(ge=0, lt=2**31)] = 0
    early_stopping: EarlyStopping | None = None
    # "auto": standardize tabular features, min-max scale images.
    preprocessing: Literal["auto", "standardize", "minmax", "none"] = "auto"


DatasetRef = Annotated[str, Field(min_length=1, max_length=200)]
Framework = Literal["tensorflow", "pytorch"]
Device = Literal["auto", "cpu", "cuda"]


class JobSpec(StrictModel):
    model: ModelSpec
    training: TrainingSpec = TrainingSpec()
    dataset: DatasetRef
    framework: Framework = "pytorch"
    device: Device = "auto"


class Draft(StrictModel):
    """What `POST /specs/validate` checks: a model, and optionally the rest of a job."""

    model: ModelSpec
    training: TrainingSpec = TrainingSpec()
    dataset: DatasetRef | None = None
    framework: Framework = "pytorch"
    device: Device = "auto"


# --- readable errors -------------------------------------------------------------------------


def _json_path(loc: tuple, data: Any) -> str:
    """`('model','layers',3,'dense','units')` → `model.layers[3].units`, skipping union tags."""
    path, node = "", data
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str) and part not in node \
                and node.get("type") == part:
            continue  # the discriminator tag pydantic adds for a tagged union
        if isinstance(part, str) and not isinstance(node, dict | list):
            continue  # a union member's name ("constrained-int") below a scalar value
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    return path


def _fields_of(loc: tuple, data: Any) -> list[str]:
    node = data
    for part in loc[:-1]:
        if isinstance(node, dict) and part not in node and node.get("type") == part:
            continue  # the union tag
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return []
    kind = node.get("type") if isinstance(node, dict) else None
    cls = LAYER_TYPES.get(kind) or OPTIMIZER_TYPES.get(kind)
    return list(cls.model_fields) if cls else []


# What a value of each JSON type was expected to be, by pydantic's error type.
EXPECTED_TYPES = {"int_type": "an integer", "float_type": "a number",
                  "finite_number": "a finite number", "bool_type": "true or false",
                  "string_type": "a string", "list_type": "a list", "dict_type": "an object",
                  "model_type": "an object", "model_attributes_type": "an object"}


def _describe(error: dict, data: Any) -> str:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "missing":
        return "is required"
    if kind == "unknown_name":
        return error["msg"]
    if kind == "extra_forbidden":
        return f"unknown parameter{closest(error['loc'][-1], _fields_of(error['loc'], data))}"
    if kind == "union_tag_invalid":
        tags = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
        return f"unknown type {shown(ctx.get('tag'))}{closest(ctx.get('tag'), tags)}"
    if kind == "union_tag_not_found":
        return "needs a 'type'"
    if kind in EXPECTED_TYPES:
        return f"expected {EXPECTED_TYPES[kind]}, received {shown(value)}"
    if kind == "string_too_long":
        return (f"expected at most {ctx['max_length']} characters, received "
                f"{len(value)}: {shown(value)}")
    if kind == "too_long":
        return f"expected at most {ctx['max_length']} items, received {len(value)}"
    if kind == "greater_than" and type(ctx.get("gt")) is int and ctx["gt"] == 0:
        return f"expected a positive integer, received {shown(value)}"
    if kind == "greater_than":
        return f"expected a value greater than {ctx['gt']}, received {shown(value)}"
    if kind == "greater_than_equal":
        return f"expected a value of at least {ctx['ge']}, received {shown(value)}"
    if kind == "less_than":
        return f"expected a value less than {ctx['lt']}, received {shown(value)}"
    if kind == "less_than_equal":
        return f"expected a value of at most {ctx['le']}, received {shown(value)}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", ""))
        choices = [c.strip(" '") for c in expected.replace(" or ", ",").split(",")]
        return f"expected one of {expected}, received {shown(value)}{closest(value, choices)}"
    if kind == "string_pattern_mismatch":
        return (f"expected lowercase letters, digits, '.', '_' or '-' (starting with a letter "
                f"or digit), received {shown(value)}")
    return f"{error['msg'][0].lower()}{error['msg'][1:]}, received {shown(value)}"


def issues_from_validation_error(exc: ValidationError, data: Any) -> list[SpecIssue]:
    """One issue per JSON path: a union reports each member's error; the first one says it."""
    issues: dict[str, SpecIssue] = {}
    for error in exc.errors():
        path = _json_path(error["loc"], data)
        issues.setdefault(path, SpecIssue(path, _describe(error, data), error.get("input")))
    return list(issues.values())


def parse_job_spec(data: Any, schema: type[StrictModel] = JobSpec) -> Any:
    """Parse a job body, raising `SpecError` with every problem's path and value."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise SpecError(issues_from_validation_error(exc, data)) from None


# --- shapes and parameters -------------------------------------------------------------------


class LayerReport(BaseModel):
    index: int
    type: str
    output_shape: list[int]
    params: int
    multiply_adds: int  # of one sample's forward pass, roughly


class Analysis(BaseModel):
    input_shape: list[int]
    layers: list[LayerReport]
    total_params: int
    total_multiply_adds: int
    output_shape: list[int]


def analyze(model: ModelSpec, max_params: int | None = None) -> Analysis:
    """Infer every layer's output shape, parameters and multiply-adds; raise `SpecError` on
    any problem."""
    analysis, issues = inspect_model(model, max_params)
    if issues:
        raise SpecError(issues)
    return analysis


def inspect_model(model: ModelSpec,
                  max_params: int | None = None) -> tuple[Analysis, list[SpecIssue]]:
    """The shapes, parameters and multiply-adds that can be inferred, and every problem found.

    Shape inference stops at the first layer that cannot take its input (the shapes after it
    are unknown); every other problem is reported with it.
    """
    issues: list[SpecIssue] = []
    shape: Shape = tuple(model.input.shape)
    reports = []
    for index, layer in enumerate(model.layers):
        path = f"model.layers[{index}]"
        if layer.type == "embedding" and index != 0:
            issues.append(SpecIssue(f"{path}.type", "embedding must be the first layer: it reads "
                                                    "integer ids from the input", layer.type))
        try:
            params, multiply_adds = layer.param_count(shape), layer.multiply_adds(shape)
            shape = layer.output_shape(shape)
        except ShapeError as error:
            field = f"{path}.{error.field}" if error.field else path
            issues.append(SpecIssue(field, str(error), error.value))
            break
        reports.append(LayerReport(index=index, type=layer.type, output_shape=list(shape),
                                   params=params, multiply_adds=multiply_adds))
    total = sum(r.params for r in reports)
    if max_params is not None and total > max_params:
        issues.append(SpecIssue("model.layers", f"{total} parameters exceed the limit of "
                                                f"{max_params}", total))
    if len(reports) == len(model.layers):
        issues.extend(_output_issues(model, shape))
    return Analysis(input_shape=list(model.input.shape), layers=reports, total_params=total,
                    total_multiply_adds=sum(r.multiply_adds for r in reports),
                    output_shape=list(shape)), issues


def _output_issues(model: ModelSpec, shape: Shape) -> list[SpecIssue]:
    issues = []
    last = f"model.layers[{len(model.layers) - 1}]"
    activation = model.output_activation
    if model.objective == "categorical_crossentropy" and activation != "softmax":
        issues.append(SpecIssue(f"{last}.activation",
                                "categorical_crossentropy expects the last layer to have a "
                                "softmax activation", activation))
    if model.objective == "binary_crossentropy" and (activation != "logistic" or shape[-1] != 1):
        issues.append(SpecIssue(last, "binary_crossentropy expects the last layer to be one "
                                      "unit with a logistic activation",
                                {"units": shape[-1], "activation": activation}))
    if len(shape) != 1:
        issues.append(SpecIssue(last, f"the output must be one vector per sample, received "
                                      f"shape {list(shape)}; add a flatten or global pooling "
                                      "layer", list(shape)))
    return issues


def check_dataset_fit(spec: JobSpec, dataset: dict, analysis: Analysis) -> None:
    """Refuse a job whose input, output, objective or split does not fit the dataset's schema."""
    from ml.datasets import split_problem

    model = spec.model
    issues = []
    problem = split_problem(dataset["num_samples"], dataset["num_classes"],
                            spec.training.validation_split)
    if problem:
        issues.append(SpecIssue("training.validation_split", problem,
                                spec.training.validation_split))
    feature_shape = dataset["feature_shape"]
    if math.prod(feature_shape) != math.prod(model.input.shape):
        issues.append(SpecIssue(
            "model.input.shape",
            f"{model.input.shape} does not fit the dataset's features {feature_shape}",
            model.input.shape,
        ))
    task = dataset["task"]
    if model.task != task:
        issues.append(SpecIssue(
            "model.objective", f"{model.objective} is for {model.task}, but dataset "
                               f"'{dataset['id']}' is a {task} task", model.objective))
    elif task == "classification":
        classes = dataset["num_classes"]
        expected = 1 if model.objective == "binary_crossentropy" else classes
        if model.objective == "binary_crossentropy" and classes != 2:
            issues.append(SpecIssue("model.objective", f"binary_crossentropy needs 2 classes, "
                                    f"dataset '{dataset['id']}' has {classes}", model.objective))
        elif analysis.output_shape[-1] != expected:
            issues.append(SpecIssue(
                f"model.layers[{len(model.layers) - 1}].units",
                f"{analysis.output_shape[-1]} outputs, but dataset '{dataset['id']}' has "
                f"{classes} classes (expected {expected})", analysis.output_shape[-1]))
    elif analysis.output_shape[-1] != math.prod(dataset["target_shape"] or [1]):
        issues.append(SpecIssue(
            f"model.layers[{len(model.layers) - 1}].units",
            f"{analysis.output_shape[-1]} outputs, but dataset '{dataset['id']}' has "
            f"targets of shape {dataset['target_shape']}", analysis.output_shape[-1]))
    if issues:
        raise SpecError(issues)




# --- the catalog -----------------------------------------------------------------------------

_VOCABULARIES = {"activation": ACTIVATIONS, "function": ACTIVATIONS,
                 "combination": COMBINATIONS, "objective": OBJECTIVES}


def _parameters(cls: type[StrictModel]) -> list[dict[str, Any]]:
    """Each parameter with its default, JSON-schema type and constraints, and allowed names."""
    properties = cls.model_json_schema()["properties"]
    parameters = []
    for name, field in cls.model_fields.items():
        if name == "type":
            continue
        entry: dict[str, Any] = {"name": name, "required": field.is_required(),
                                 "schema": properties[name]}
        if not field.is_required():
            default = field.get_default(call_default_factory=True)
            entry["default"] = default.model_dump() if isinstance(default, BaseModel) else default
        names = _VOCABULARIES.get(name) or (INITIALIZERS if name.endswith("_initializer")
                                            else None)
        if names:
            entry["allowed"] = list(names)
        parameters.append(entry)
    return parameters


def catalog() -> dict[str, Any]:
    """Every name of the language with its parameters, defaults, formulas and ranges."""
    def describe(info) -> dict[str, Any]:
        return {k: v for k, v in vars(info).items() if v != ""}

    return {
        "layers": [{"type": name, "description": (cls.__doc__ or "").strip(),
                    "parameters": _parameters(cls)} for name, cls in LAYER_TYPES.items()],
        "activations": [describe(a) for a in ACTIVATIONS.values()],
        "activation_aliases": ACTIVATION_ALIASES,
        "combinations": [describe(c) for c in COMBINATIONS.values()],
        "objectives": [describe(o) for o in OBJECTIVES.values()],
        "optimizers": [{"type": name, "update": OPTIMIZER_UPDATES[name],
                        "parameters": _parameters(cls)} for name, cls in OPTIMIZER_TYPES.items()],
        "initializers": [{"name": k, "formula": v} for k, v in INITIALIZERS.items()],
        "training": _parameters(TrainingSpec),
        "metrics": metric_catalog(),
    }
