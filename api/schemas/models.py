"""Bodies of the registry and prediction routes: models, versions, cards, aliases, batching."""

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    Field,
    StrictBool,
)

from api.schemas.base import Milliseconds, Name, Orm, PositiveInt, RequestBody, Timestamp


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
    # What a prediction naming no version gets: `production`, else the latest version the
    # training coach did not flag.
    default_version: int | None
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


class CoachLink(BaseModel):
    """A catalog entry that helps: `GET /catalog`'s `section`, the entry's `name`."""

    section: str
    name: str
    label: str


class CoachFlag(BaseModel):
    """One thing the training coach found: "diverged", "chance" (accuracy at the majority
    class's share) or "overfit", in plain words, with the catalog entries that help."""

    code: str
    message: str
    links: list[CoachLink]


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
    # The headline of the test split's evaluation report (`GET /jobs/{job_id}/evaluation`).
    evaluation: dict[str, Any] | None = None
    coach: list[CoachFlag] = Field(description="what the training coach found in the run's "
                                   "epochs; a flagged version is not served by default")
    served_by_default: bool  # a prediction naming no version or alias gets this version
    publishing: str  # why it is, or is not, served by default


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
