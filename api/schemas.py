"""Response and request bodies of the REST API."""

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
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


class Event(Orm):
    status: str
    at: Timestamp
    detail: str | None = None


class JobOut(Orm):
    id: str
    status: str
    submission_id: str | None
    model_name: str
    framework: str
    requested_device: str
    device: str | None
    queue: str
    dataset: str
    dataset_sha256: str | None
    split: dict[str, Any] | None
    attempt: int
    max_attempts: int
    max_runtime_s: int
    worker: str | None
    epochs: int
    epochs_done: int
    best_metrics: dict[str, Any] | None
    final_metrics: dict[str, Any] | None
    failure_reason: str | None
    model_version: int | None = None
    created_at: Timestamp
    started_at: Timestamp
    finished_at: Timestamp
    timeline: list[Event] = []
    spec: dict[str, Any]


class JobList(BaseModel):
    items: list[JobOut]
    limit: int
    offset: int


class MetricRow(Orm):
    epoch: int
    loss: float | None
    val_loss: float | None
    accuracy: float | None
    val_accuracy: float | None
    mae: float | None
    val_mae: float | None
    learning_rate: float | None
    duration_s: float | None
    samples_per_s: float | None


class VersionSummary(Orm):
    version: int
    job_id: str
    framework: str
    servable: bool
    onnx_max_abs_diff: float
    created_at: Timestamp
    metrics: dict[str, Any]
    formats: list[str]


class Batching(BaseModel):
    max_batch_size: int
    max_delay_ms: float


class ModelOut(BaseModel):
    name: str
    owner_id: int
    public: bool  # every member may read it and predict with it
    created_at: Timestamp
    latest_version: int | None
    aliases: dict[str, int]
    batching: Batching
    versions: list[VersionSummary]


class BatchingIn(RequestBody):
    """Per-model adaptive batching; `null` restores the service default."""

    max_batch_size: PositiveInt | None = None
    max_delay_ms: Milliseconds | None = None


class ModelPatch(RequestBody):
    """What the owner changes; fields left out stay as they are."""

    batching: BatchingIn | None = None
    public: StrictBool | None = None  # open the model to every member, or close it


class DatasetPatch(RequestBody):
    public: StrictBool  # open the dataset to every member (to inspect and train on), or close it


class ExportParity(BaseModel):
    max_abs_diff: float
    tolerance: float


class ModelCard(BaseModel):
    """One version: how it was made, what it expects, what it has, how far its export is."""

    name: str
    version: int
    job_id: str
    created_at: Timestamp
    aliases: list[str]
    framework: str
    library_versions: dict[str, str]
    spec: dict[str, Any]
    dataset: dict[str, Any]
    metrics: dict[str, Any]
    params: int
    device: str
    input: dict[str, Any]
    output: dict[str, Any]
    task: str
    class_names: list[str] | None
    preprocessing: dict[str, Any]
    files: dict[str, str]
    formats: list[str]
    export_parity: ExportParity
    servable: bool


class AliasIn(RequestBody):
    version: PositiveInt


class AliasMove(BaseModel):
    version: int | None  # None: the alias was removed
    previous_version: int | None
    user_id: int | None
    at: Timestamp


class AliasOut(BaseModel):
    model: str
    alias: str
    version: int | None  # None: the alias was removed; its history stays
    history: list[AliasMove]


class PredictIn(RequestBody):
    instances: Annotated[list[Any], Field(min_length=1)]
    version: PositiveInt | None = None
    alias: Name | None = None


class PredictByNameIn(PredictIn):
    model: Name


class PredictOut(BaseModel):
    model: str
    version: int
    predictions: list[Any]
    probabilities: list[list[float]] | None = None
    classes: list[str] | None = None


class Me(BaseModel):
    id: int
    name: str
    role: str
    models: list[str] | None = None  # an app key's models


class UserIn(RequestBody):
    name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._@-]+$")]
    role: Literal["admin", "member", "app"] = "member"
    models: Annotated[list[Name], Field(min_length=1, max_length=1000)] | None = None


class UserCreated(Me):
    api_key: str  # shown once


class KeyIn(RequestBody):
    user_id: Id | None = None


class KeyOut(Orm):
    id: int
    user_id: int
    prefix: str
    created_at: Timestamp
    revoked_at: Timestamp


class KeyCreated(KeyOut):
    api_key: str  # shown once


class DatasetOut(BaseModel):
    """A dataset's schema; `preview` (the first samples) only when one dataset is read."""

    id: str
    name: str
    source: str  # "builtin" or "upload"
    format: str | None
    owner_id: int | None
    public: bool  # built-ins always; an upload when its owner opened it to every member
    created_at: Timestamp
    description: str
    task: str
    kind: str
    feature_shape: list[int]
    feature_names: list[str] | None
    dtype: str
    num_samples: int
    num_classes: int | None
    class_names: list[str] | None
    class_counts: list[int] | None
    target_shape: list[int] | None
    target_name: str | None
    sha256: str
    preview: list[dict[str, Any]] | None = None
