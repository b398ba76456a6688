"""The model-definition language (spec v1): one pydantic schema class per layer type.

No framework is imported here. Each layer class states its defaults once, infers its output
shape and counts its parameters; the backends build it by its ``type`` name.
"""

import difflib
import math
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from ml.catalog import ACTIVATION_ALIASES, ACTIVATIONS, LOGIT_ACTIVATIONS, OBJECTIVES
from ml.errors import SpecError, SpecIssue

Shape = tuple[int, ...]


def closest(name: str, choices) -> str:
    match = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.5)
    return f"; did you mean '{match[0]}'?" if match else ""


def _activation_name(value: str) -> str:
    value = ACTIVATION_ALIASES.get(value, value)
    if value not in ACTIVATIONS:
        raise PydanticCustomError(
            "unknown_name",
            "unknown activation '{value}'{hint}",
            {"value": value, "hint": closest(value, [*ACTIVATIONS, *ACTIVATION_ALIASES])},
        )
    return value


def _objective_name(value: str) -> str:
    if value not in OBJECTIVES:
        raise PydanticCustomError(
            "unknown_name",
            "unknown objective '{value}'{hint}",
            {"value": value, "hint": closest(value, OBJECTIVES)},
        )
    return value


ActivationName = Annotated[str, AfterValidator(_activation_name)]
ObjectiveName = Annotated[str, AfterValidator(_objective_name)]
Probability = Annotated[float, Field(ge=0.0, lt=1.0)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Layer(StrictModel):
    """A layer type: its parameters, output shape and parameter count."""

    type: str

    def output_shape(self, shape: Shape) -> Shape:
        return shape

    def weight_shapes(self, shape: Shape) -> dict[str, Shape]:
        """The canonical weight layout, shared by both backends and the ONNX exporter."""
        return {}

    def param_count(self, shape: Shape) -> int:
        return sum(math.prod(s) for s in self.weight_shapes(shape).values())

    @property
    def output_activation(self) -> str | None:
        return None


class Dense(Layer):
    """The linear layer: acts on the last axis, like Keras Dense and torch Linear."""

    type: Literal["dense"]
    units: PositiveInt
    activation: ActivationName = "identity"
    combination: Literal["linear"] = "linear"
    use_bias: bool = True
    kernel_initializer: Literal["glorot_uniform"] = "glorot_uniform"
    bias_initializer: Literal["zeros"] = "zeros"

    def output_shape(self, shape: Shape) -> Shape:
        return (*shape[:-1], self.units)

    def weight_shapes(self, shape: Shape) -> dict[str, Shape]:
        kernel = {"kernel": (shape[-1], self.units)}  # [fan_in, units], the Keras layout
        return {**kernel, "bias": (self.units,)} if self.use_bias else kernel

    @property
    def output_activation(self) -> str | None:
        return self.activation


class Dropout(Layer):
    type: Literal["dropout"]
    rate: Probability = 0.5


class Flatten(Layer):
    type: Literal["flatten"]

    def output_shape(self, shape: Shape) -> Shape:
        return (math.prod(shape),)


LAYER_TYPES: dict[str, type[Layer]] = {cls.model_fields["type"].annotation.__args__[0]: cls
                                       for cls in (Dense, Dropout, Flatten)}
AnyLayer = Annotated[Dense | Dropout | Flatten, Field(discriminator="type")]


class InputSpec(StrictModel):
    shape: Annotated[list[PositiveInt], Field(min_length=1, max_length=3)]
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
    type: str
    learning_rate: PositiveFloat


class SGD(Optimizer):
    type: Literal["sgd"]
    learning_rate: PositiveFloat = 0.01
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    nesterov: bool = False


class Adam(Optimizer):
    type: Literal["adam"]
    learning_rate: PositiveFloat = 0.001
    beta_1: Probability = 0.9
    beta_2: Probability = 0.999
    epsilon: PositiveFloat = 1e-7


OPTIMIZER_TYPES: dict[str, type[Optimizer]] = {"sgd": SGD, "adam": Adam}
AnyOptimizer = Annotated[SGD | Adam, Field(discriminator="type")]


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


class JobSpec(StrictModel):
    model: ModelSpec
    training: TrainingSpec = TrainingSpec()
    dataset: Annotated[str, Field(min_length=1, max_length=200)]
    framework: Literal["tensorflow", "pytorch"] = "pytorch"
    device: Literal["auto", "cpu", "cuda"] = "auto"


# --- readable errors -------------------------------------------------------------------------


def _json_path(loc: tuple, data: Any) -> str:
    """`('model','layers',3,'dense','units')` → `model.layers[3].units`, skipping union tags."""
    path, node = "", data
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str) and part not in node \
                and node.get("type") == part:
            continue  # the discriminator tag pydantic adds for a tagged union
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
        return f"unknown type '{ctx.get('tag')}'{closest(ctx.get('tag'), tags)}"
    if kind == "union_tag_not_found":
        return "needs a 'type'"
    if kind == "greater_than" and type(ctx.get("gt")) is int and ctx["gt"] == 0:
        return f"expected a positive integer, received {value!r}"
    if kind == "greater_than":
        return f"expected a value greater than {ctx['gt']}, received {value!r}"
    if kind == "greater_than_equal":
        return f"expected a value of at least {ctx['ge']}, received {value!r}"
    if kind == "less_than":
        return f"expected a value less than {ctx['lt']}, received {value!r}"
    if kind == "less_than_equal":
        return f"expected a value of at most {ctx['le']}, received {value!r}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", ""))
        choices = [c.strip(" '") for c in expected.replace(" or ", ",").split(",")]
        return f"expected one of {expected}, received {value!r}{closest(value, choices)}"
    if kind == "string_pattern_mismatch":
        return (f"expected lowercase letters, digits, '.', '_' or '-' (starting with a letter "
                f"or digit), received {value!r}")
    return f"{error['msg'][0].lower()}{error['msg'][1:]}, received {value!r}"


def issues_from_validation_error(exc: ValidationError, data: Any) -> list[SpecIssue]:
    return [
        SpecIssue(_json_path(e["loc"], data), _describe(e, data), e.get("input"))
        for e in exc.errors()
    ]


def parse_job_spec(data: Any) -> JobSpec:
    """Parse a job body, raising `SpecError` with every problem's path and value."""
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(issues_from_validation_error(exc, data)) from None


# --- shapes and parameters -------------------------------------------------------------------


class LayerReport(BaseModel):
    index: int
    type: str
    output_shape: list[int]
    params: int


class Analysis(BaseModel):
    input_shape: list[int]
    layers: list[LayerReport]
    total_params: int
    output_shape: list[int]


def analyze(model: ModelSpec, max_params: int | None = None) -> Analysis:
    """Infer every layer's output shape and parameter count; raise `SpecError` on any problem."""
    issues: list[SpecIssue] = []
    shape: Shape = tuple(model.input.shape)
    reports = []
    for index, layer in enumerate(model.layers):
        params = layer.param_count(shape)
        shape = layer.output_shape(shape)
        reports.append(LayerReport(index=index, type=layer.type, output_shape=list(shape),
                                   params=params))
    total = sum(r.params for r in reports)
    if max_params is not None and total > max_params:
        issues.append(SpecIssue("model.layers", f"{total} parameters exceed the limit of "
                                                f"{max_params}", total))
    last = len(model.layers) - 1
    activation = model.output_activation
    if model.objective == "categorical_crossentropy" and activation != "softmax":
        issues.append(SpecIssue(f"model.layers[{last}].activation",
                                "categorical_crossentropy expects the last layer to be a dense "
                                "layer with a softmax activation", activation))
    if model.objective == "binary_crossentropy" and (activation != "logistic" or shape[-1] != 1):
        issues.append(SpecIssue(f"model.layers[{last}]",
                                "binary_crossentropy expects the last layer to be one dense unit "
                                "with a logistic activation",
                                {"units": shape[-1], "activation": activation}))
    if len(shape) != 1:
        issues.append(SpecIssue(f"model.layers[{last}]",
                                f"the output must be one vector per sample, got shape {list(shape)}"
                                "; add a flatten layer", list(shape)))
    if issues:
        raise SpecError(issues)
    return Analysis(input_shape=list(model.input.shape), layers=reports, total_params=total,
                    output_shape=list(shape))


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


