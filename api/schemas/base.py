"""What every body of the API is made of: timestamps, bounded integers and strings, and the
strictness of what a client sends."""

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError


def _utc_iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    # SQLite returns naive datetimes; every stored time is UTC.
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


Timestamp = Annotated[datetime | None, PlainSerializer(_utc_iso, return_type=str | None)]


# The largest value of PostgreSQL's INTEGER, the narrowest integer column: every id, version,
# offset and epoch a client sends is bounded by it, so that no number reaches SQL that the
# database cannot hold or compare (SQLite's integers and PostgreSQL's OFFSET end at 2^63).
SQL_INT_MAX = 2**31 - 1


def _positive_int(value: Any) -> Any:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise PydanticCustomError("positive_integer",
                                  "expected a positive integer, received {value}",
                                  {"value": repr(value)})
    if value > SQL_INT_MAX:
        raise PydanticCustomError("positive_integer",
                                  "expected a positive integer of at most {max}, received {value}",
                                  {"max": SQL_INT_MAX, "value": repr(value)})
    return value


def _positive_int_text(value: Any) -> Any:
    """A positive integer written in a URL path, kept as its text."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        _positive_int(int(value))
        return value
    raise PydanticCustomError("positive_integer", "expected a positive integer, received {value}",
                              {"value": repr(value)})


def _non_negative_number(value: Any) -> Any:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < 1e6:
        raise PydanticCustomError("non_negative_number",
                                  "expected a number of milliseconds from 0, received {value}",
                                  {"value": repr(value)})
    return value


# Refused in the API's own words ("version: expected a positive integer, received -3").
PositiveInt = Annotated[int, BeforeValidator(_positive_int),
                        Field(json_schema_extra={"minimum": 1, "maximum": SQL_INT_MAX})]


Milliseconds = Annotated[float, BeforeValidator(_non_negative_number)]


# Integer parameters of paths, queries and headers: FastAPI converts their text.
Id = Annotated[int, Field(ge=1, le=SQL_INT_MAX)]


Count = Annotated[int, Field(ge=0, le=SQL_INT_MAX)]  # an offset, an epoch, an event id


# A version in a URL path, kept as its text for the routes that read it (`positive_version`);
# documented as the integer it must be.
VersionText = Annotated[str, BeforeValidator(_positive_int_text),
                        WithJsonSchema({"type": "integer", "minimum": 1,
                                        "maximum": SQL_INT_MAX})]


# Bounds of the strings and lists a body may hold.
Name = Annotated[str, Field(min_length=1, max_length=200)]


class Orm(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class RequestBody(BaseModel):
    """What a client sends: no unknown fields, and no value converted to the type expected
    (`"12"` is not a number, `1` is not `true`)."""

    model_config = ConfigDict(extra="forbid", strict=True)
