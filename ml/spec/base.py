"""The spec language's building blocks: strict models, bounded numbers, names of the vocabulary,
shapes and the error a layer raises when it cannot take its input."""

import difflib
from collections.abc import Collection, Iterable
from typing import Annotated, Any, NamedTuple, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
)
from pydantic_core import PydanticCustomError

from ml.catalog import (
    ACTIVATION_ALIASES,
    ACTIVATIONS,
    COMBINATIONS,
    INITIALIZERS,
    OBJECTIVES,
)

Shape = tuple[int, ...]


# Names of the language are short; a longer string is no misspelling of one.
MAX_NAME_CHARS = 64
MAX_SHOWN_CHARS = 100  # of a value echoed in a message


def closest(name: object, choices: Iterable[str]) -> str:
    """The near match of a misspelt name, else the valid names: a guess is never a dead end."""
    names = list(choices)
    match = (difflib.get_close_matches(str(name), names, n=1, cutoff=0.5)
             if len(str(name)) <= MAX_NAME_CHARS else [])
    if match:
        return f"; did you mean '{match[0]}'?"
    return f"; valid: {', '.join(names)}" if names else ""


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


def _known(kind: str, names: Collection[str]) -> AfterValidator:
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


def type_name(model_class: type[BaseModel]) -> str:
    """The `type` tag a spec class stands for: `Conv2D` → 'conv2d' (its name if it has none)."""
    field = model_class.model_fields.get("type")
    tags = get_args(field.annotation) if field is not None else ()
    return str(tags[0]) if tags else model_class.__name__


class Weight(NamedTuple):
    shape: Shape
    initializer: str


class ShapeError(ValueError):
    """A layer cannot take its input: `field` names the parameter at fault, if one is."""

    def __init__(self, message: str, field: str | None = None, value: Any = None):
        super().__init__(message)
        self.field, self.value = field, value


def dims(shape: Shape) -> str:
    return "×".join(map(str, shape))
