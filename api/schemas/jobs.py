"""Bodies of the job routes: a job, its timeline, the list, and its per-epoch metric rows."""

from typing import Any

from pydantic import BaseModel, Field, create_model

from api.schemas.base import Orm, Timestamp
from api.schemas.models import CoachFlag
from ml.epochs import METRIC_FIELDS


class Event(Orm):
    status: str
    at: Timestamp
    detail: str | None = None


class JobOut(Orm):
    id: str
    status: str
    submission_id: str | None
    name: str | None = None  # the submitter's label for the run
    note: str | None = None
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
    coach: list[CoachFlag] | None = Field(None, description=(
        "what the training coach found in the epochs of a succeeded job (diverged, stayed at "
        "chance level, overfit), each with the catalog entries that help; [] when nothing, "
        "null before the job succeeds"))


class JobList(BaseModel):
    items: list[JobOut]
    limit: int
    offset: int


# A row per epoch: the fields `ml.epochs` declares, in its order (each None where it does not
# apply, e.g. accuracy on a regression).
MetricRow = create_model("MetricRow", __base__=Orm, epoch=(int, ...),
                         **{name: (float | None, ...) for name in METRIC_FIELDS})
