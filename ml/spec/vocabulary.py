"""Every name of the language with its parameters, defaults, formulas and ranges: `GET /catalog`."""

from typing import Any

from pydantic import (
    BaseModel,
)

from ml.catalog import (
    ACTIVATION_ALIASES,
    ACTIVATIONS,
    COMBINATIONS,
    INITIALIZERS,
    OBJECTIVES,
    OPTIMIZER_UPDATES,
)
from ml.epochs import metric_catalog
from ml.spec.base import StrictModel
from ml.spec.job import OPTIMIZER_TYPES, TrainingSpec
from ml.spec.layers import LAYER_TYPES

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
