"""Bodies of the study routes: a study with its trials and the best so far, the list, and what
publishing the best trial answers. The body of `POST /studies` is `core.studies.StudyDefinition`."""

from typing import Any

from pydantic import BaseModel, Field

from api.schemas.base import RequestBody, Timestamp


class CurvePoint(BaseModel):
    epoch: int
    value: float


class TrialOut(BaseModel):
    number: int = Field(description="0-based, in the order the trials were started")
    job_id: str | None = Field(description="the trial's job (none for a trial whose job was "
                                           "invalid)")
    params: dict[str, Any] = Field(description="the value of each path of the space")
    status: str = Field(description="the job's status, or pruned")
    value: float | None = Field(description="the objective: its last epoch's value")
    pruned_reason: str | None = None
    failure_reason: str | None = None
    epochs_done: int
    metrics: dict[str, Any] | None = Field(description="the job's final metrics")
    model_version: int | None = None
    curve: list[CurvePoint] = Field(description="the objective at each epoch recorded")


class BestOut(BaseModel):
    number: int
    job_id: str | None
    params: dict[str, Any]
    value: float | None
    model_version: int | None = None


class StudyOut(BaseModel):
    id: str
    name: str
    status: str = Field(description="running, finished or cancelled")
    objective: dict[str, Any]
    sampler: str
    pruner: str
    max_trials: int
    max_concurrent: int
    publish: str
    trials_started: int
    counts: dict[str, int] = Field(description="how many trials are in each status")
    created_at: Timestamp
    deadline: Timestamp
    finished_at: Timestamp
    definition: dict[str, Any] = Field(description="the study as submitted, defaults filled")
    trials: list[TrialOut] = []
    best: BestOut | None = None


class StudyList(BaseModel):
    items: list[StudyOut]
    limit: int
    offset: int


class PublishBody(RequestBody):
    alias: str | None = Field(None, max_length=64,
                              description="point this alias of the model at the version")


class Published(BaseModel):
    study_id: str
    trial: int
    job_id: str
    model: str
    version: int
    alias: str | None


class Importance(BaseModel):
    importance: dict[str, float] = Field(description="each path of the space: its share of "
                                                     "the objective's variation")
    trials: int = Field(description="the succeeded trials it is computed from")
