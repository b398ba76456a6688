"""SQLAlchemy ORM models: users, API keys, datasets, jobs, job metrics, studies and the model
registry."""

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON,
                           datetime: DateTime(timezone=True)}


class Role(enum.StrEnum):
    admin = "admin"
    member = "member"
    app = "app"


class JobStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


FINISHED_STATUSES = (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    # For the `app` role: the names of the models it may predict with.
    models: Mapped[list[Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The first characters of the key, shown in listings so a user can tell keys apart.
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(lazy="joined")


class Dataset(Base):
    """An uploaded dataset; built-ins live in ``ml.datasets`` and have no row.

    ``schema`` is ``ml.datasets.Dataset.schema`` plus a preview of the first samples.
    """

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    format: Mapped[str] = mapped_column(String(20))
    # The canonical file in the artifact store is named by this hash, shared by equal uploads.
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    schema: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Readable (listed, inspected, trained on) by every member; only its owner changes it.
    public: Mapped[bool] = mapped_column(default=False, server_default=false())


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("owner_id", "submission_id", name="uq_jobs_owner_submission"),
        Index("ix_jobs_status_created", "status", "created_at"),
        UniqueConstraint("study_id", "trial_number", name="uq_jobs_study_trial"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    submission_id: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.queued)
    model_name: Mapped[str] = mapped_column(String(200))
    framework: Mapped[str] = mapped_column(String(20))
    requested_device: Mapped[str] = mapped_column(String(10))
    queue: Mapped[str] = mapped_column(String(20))
    device: Mapped[str | None] = mapped_column(String(40))
    dataset: Mapped[str] = mapped_column(String(200), index=True)
    # What the job trains on, fixed at submission: the dataset's content hash and the
    # seeded split (seed, fractions, sample counts).
    dataset_sha256: Mapped[str | None] = mapped_column(String(64))
    split: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    spec: Mapped[dict[str, Any]]
    attempt: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=3)
    max_runtime_s: Mapped[int]
    worker: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None]
    # "cancel" or "release" (a worker shutting down gives the job back to the queue); the
    # training loop polls it with its heartbeat.
    stop_requested: Mapped[str | None] = mapped_column(String(10))
    # When the message was last sent: the reconciler re-sends queued jobs the broker lost.
    sent_at: Mapped[datetime | None]
    epochs_done: Mapped[int] = mapped_column(default=0)
    best_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    final_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    # The version number of `model_name` this job published (model_versions.job_id links back).
    model_version: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # A study's trial: its study, its number there (0-based) and the values the space gave it.
    study_id: Mapped[str | None] = mapped_column(
        ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    trial_number: Mapped[int | None]
    trial_params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Why its study's pruner stopped it (the job ends cancelled with this reason).
    pruned_reason: Mapped[str | None] = mapped_column(Text)
    # Whether succeeding publishes a version; a trial's study may publish it later from what
    # `unpublished` holds (the manifest, the stored files' name, the export's difference).
    publish: Mapped[bool] = mapped_column(default=True, server_default=true())
    unpublished: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # What the training coach (`ml.coach`) found in its epochs once it succeeded: a list of
    # flags, empty when none; None before it ends.
    coach: Mapped[list[Any] | None] = mapped_column(JSON)
    # The submitter's label for the run and what it tries, to tell runs of one model apart.
    name: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)


class StudyStatus(enum.StrEnum):
    running = "running"
    finished = "finished"
    cancelled = "cancelled"


class Study(Base):
    """Many trainings as one experiment: its definition (`core.studies.StudyDefinition`) and how
    many trials it has started; the trials are jobs that name it."""

    __tablename__ = "studies"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default=StudyStatus.running)
    definition: Mapped[dict[str, Any]]
    # Every space combination was checked at submit (else each trial is, as it is created).
    enumerated: Mapped[bool] = mapped_column(default=False)
    # Trial numbers are taken by advancing this with a conditional update: two processes that
    # start trials at once never take the same number.
    trials_started: Mapped[int] = mapped_column(default=0)
    # Trials of a space too large to check at submit whose job was invalid: each has no job,
    # and fails alone with its reason ({"number", "params", "reason"}).
    invalid_trials: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deadline: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class JobEvent(Base):
    """What happened to a job, in order: status transitions (the timeline) and finished epochs.

    The id orders the Server-Sent Events stream and is what `Last-Event-ID` resumes from.
    """

    __tablename__ = "job_events"
    # One event per epoch: an epoch trained again (a resumed job) replaces its event.
    __table_args__ = (Index("uq_job_events_job_epoch", "job_id", "epoch", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10), default="status")  # "status" or "epoch"
    epoch: Mapped[int | None]  # of an "epoch" event
    status: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class JobMetric(Base):
    """One epoch of one job; the key makes a resumed job overwrite, never duplicate, an epoch."""

    __tablename__ = "job_metrics"

    job_id: Mapped[str] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    epoch: Mapped[int] = mapped_column(primary_key=True)
    loss: Mapped[float | None]
    val_loss: Mapped[float | None]
    accuracy: Mapped[float | None]
    val_accuracy: Mapped[float | None]
    mae: Mapped[float | None]
    val_mae: Mapped[float | None]
    learning_rate: Mapped[float | None]
    duration_s: Mapped[float | None]
    samples_per_s: Mapped[float | None]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class WorkerNode(Base):
    """A worker announcing the queues it consumes (and so the devices it trains on)."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    queues: Mapped[list[Any]]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)


class RegisteredModel(Base):
    __tablename__ = "models"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Adaptive batching of this model's requests; None takes the service-wide default.
    max_batch_size: Mapped[int | None]
    max_delay_ms: Mapped[float | None]
    # Readable (listed, its cards and files, predictions) by every member; only its owner
    # changes it, trains new versions or moves its aliases.
    public: Mapped[bool] = mapped_column(default=False, server_default=false())

    versions: Mapped[list["ModelVersion"]] = relationship(
        back_populates="model", order_by="ModelVersion.version"
    )
    aliases: Mapped[list["ModelAlias"]] = relationship(order_by="ModelAlias.alias")


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_model_versions"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[int]
    job_id: Mapped[str] = mapped_column(String(36), unique=True)
    framework: Mapped[str] = mapped_column(String(20))
    artifact_dir: Mapped[str] = mapped_column(Text)
    # The manifest written beside the weights: spec, input shape, classes, files and hashes,
    # library versions, metrics and export parity; the model card is built from it.
    card: Mapped[dict[str, Any]]
    onnx_max_abs_diff: Mapped[float]
    servable: Mapped[bool]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    model: Mapped[RegisteredModel] = relationship(back_populates="versions")


class ModelAlias(Base):
    """A name (e.g. ``production``) that points at one version of a model."""

    __tablename__ = "model_aliases"
    __table_args__ = (UniqueConstraint("model_id", "alias", name="uq_model_aliases"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    version: Mapped[ModelVersion] = relationship(lazy="joined")


class ModelAliasEvent(Base):
    """One move of an alias (to no version: its removal), kept so that what served when can be
    told afterwards."""

    __tablename__ = "model_alias_events"
    __table_args__ = (Index("ix_model_alias_events_model_alias", "model_id", "alias"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(64))
    version: Mapped[int | None]
    previous_version: Mapped[int | None]
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
