"""A job body parsed into the spec, its validation errors in the language's own words: each names
the JSON path and echoes the value."""

from typing import Any, TypeVar, overload

from pydantic import (
    ValidationError,
)
from pydantic_core import ErrorDetails

from ml.errors import SpecError, SpecIssue
from ml.spec.base import StrictModel, closest, shown
from ml.spec.job import OPTIMIZER_TYPES, JobSpec
from ml.spec.layers import LAYER_TYPES


def _json_path(loc: tuple[int | str, ...], data: Any) -> str:
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


def _fields_of(loc: tuple[int | str, ...], data: Any) -> list[str]:
    node = data
    for part in loc[:-1]:
        if isinstance(node, dict) and part not in node and node.get("type") == part:
            continue  # the union tag
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return []
    kind = node.get("type") if isinstance(node, dict) else None
    if not isinstance(kind, str):
        return []
    cls = LAYER_TYPES.get(kind) or OPTIMIZER_TYPES.get(kind)
    return list(cls.model_fields) if cls else []


# What a value of each JSON type was expected to be, by pydantic's error type.
EXPECTED_TYPES = {"int_type": "an integer", "float_type": "a number",
                  "finite_number": "a finite number", "bool_type": "true or false",
                  "string_type": "a string", "list_type": "a list", "dict_type": "an object",
                  "model_type": "an object", "model_attributes_type": "an object"}


def _describe(error: ErrorDetails, data: Any) -> str:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error["input"]
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


Schema = TypeVar("Schema", bound=StrictModel)


@overload
def parse_job_spec(data: Any) -> JobSpec: ...


@overload
def parse_job_spec(data: Any, schema: type[Schema]) -> Schema: ...


def parse_job_spec(data: Any, schema: type[StrictModel] = JobSpec) -> StrictModel:
    """Parse a job body, raising `SpecError` with every problem's path and value."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise SpecError(issues_from_validation_error(exc, data)) from None
