"""Response and request bodies of the REST API."""

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer


def _utc_iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    # SQLite returns naive datetimes; every stored time is UTC.
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


Timestamp = Annotated[datetime | None, PlainSerializer(_utc_iso, return_type=str | None)]


class Orm(BaseModel):
    model_config = ConfigDict(from_attributes=True)


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


class ModelOut(BaseModel):
    name: str
    owner_id: int
    created_at: Timestamp
    latest_version: int | None
    versions: list[VersionSummary]


class PredictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instances: Annotated[list[Any], Field(min_length=1)]
    version: Annotated[int | None, Field(ge=1)] = None


class PredictByNameIn(PredictIn):
    model: str


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


class DatasetOut(BaseModel):
    """A dataset's schema; `preview` (the first samples) only when one dataset is read."""

    id: str
    name: str
    source: str  # "builtin" or "upload"
    format: str | None
    owner_id: int | None
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
