"""Every name of the language with its parameters, defaults, formulas and ranges: `GET /catalog`."""

import inspect
from collections.abc import Mapping
from typing import Any, get_args

import numpy as np
from pydantic import BaseModel

from ml.catalog import (
    ACTIVATION_ALIASES,
    ACTIVATIONS,
    COMBINATIONS,
    INITIALIZERS,
    OBJECTIVES,
    OPTIMIZER_UPDATES,
    ActivationInfo,
    FunctionInfo,
    ObjectiveInfo,
)
from ml.epochs import metric_catalog
from ml.spec.base import StrictModel
from ml.spec.job import OPTIMIZER_TYPES, JobSpec, ModelSpec, TrainingSpec
from ml.spec.layers import LAYER_TYPES

# The parameters whose value is a name of the vocabulary.
_VOCABULARIES: dict[str, Mapping[str, object]] = {
    "activation": ACTIVATIONS, "function": ACTIVATIONS, "combination": COMBINATIONS,
    "objective": OBJECTIVES}

# Where an activation's curve is drawn: the net input g from -4 to 4 in steps of 0.05.
CURVE_INPUTS = np.linspace(-4.0, 4.0, 161)
CURVE_DIGITS = 5  # significant digits of each drawn value


def _nested(annotation: Any) -> type[StrictModel] | None:
    """The block a parameter holds (`early_stopping`'s), if it holds one block type."""
    blocks = [a for a in (annotation, *get_args(annotation))
              if isinstance(a, type) and issubclass(a, StrictModel)]
    return blocks[0] if len(blocks) == 1 else None


def _parameters(cls: type[StrictModel], listed_apart: tuple[str, ...] = ()
                ) -> list[dict[str, Any]]:
    """Each parameter with its description, default, JSON-schema type and constraints, allowed
    names, and the parameters of a block it holds (but those `listed_apart`)."""
    schema = cls.model_json_schema()
    if "$ref" in schema:  # a recursive class (a block of layers) is one of its definitions
        schema = schema["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    properties = schema["properties"]
    parameters = []
    for name, field in cls.model_fields.items():
        if name == "type" or name in listed_apart:
            continue
        schema = {k: v for k, v in properties[name].items() if k != "description"}
        entry: dict[str, Any] = {"name": name, "description": field.description or "",
                                 "required": field.is_required(), "schema": schema}
        if not field.is_required():
            default = field.get_default(call_default_factory=True)
            entry["default"] = default.model_dump() if isinstance(default, BaseModel) else default
        names = _VOCABULARIES.get(name) or (INITIALIZERS if name.endswith("_initializer")
                                            else None)
        if names:
            entry["allowed"] = list(names)
        if block := _nested(field.annotation):
            entry["parameters"] = _parameters(block)
        parameters.append(entry)
    return parameters


def curve(activation: ActivationInfo) -> dict[str, list[float | None]]:
    """The activation of the first of two units whose net inputs are (g, 0): the function of g
    itself for those applied unit by unit, the logistic for softmax. A value that is not finite
    (1/0) is null, a gap in the curve."""
    pairs = np.stack([CURVE_INPUTS, np.zeros_like(CURVE_INPUTS)], axis=-1)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        values = activation.reference(pairs)[..., 0]
    return {"g": [round(float(g), 2) for g in CURVE_INPUTS],
            "value": [float(f"{v:.{CURVE_DIGITS}g}") if np.isfinite(v) else None
                      for v in values]}


def _function(info: FunctionInfo | ObjectiveInfo) -> dict[str, Any]:
    return {k: v for k, v in vars(info).items() if v != "" and k != "reference"}


def catalog() -> dict[str, Any]:
    """Every name of the language with its parameters, defaults, formulas and ranges."""
    return {
        "layers": [{"type": name, "description": inspect.getdoc(cls) or "",
                    "parameters": _parameters(cls)} for name, cls in LAYER_TYPES.items()],
        "activations": [{**_function(a), "curve": curve(a)} for a in ACTIVATIONS.values()],
        "activation_aliases": ACTIVATION_ALIASES,
        "combinations": [_function(c) for c in COMBINATIONS.values()],
        "objectives": [_function(o) for o in OBJECTIVES.values()],
        "optimizers": [{"type": name, "description": inspect.getdoc(cls) or "",
                        "update": OPTIMIZER_UPDATES[name], "parameters": _parameters(cls)}
                       for name, cls in OPTIMIZER_TYPES.items()],
        "initializers": [{"name": k, "formula": v} for k, v in INITIALIZERS.items()],
        "job": _parameters(JobSpec, listed_apart=("model", "training")),
        "model": _parameters(ModelSpec),
        "training": _parameters(TrainingSpec),
        "metrics": metric_catalog(),
    }
