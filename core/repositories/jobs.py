"""Queries on jobs, their timeline events and per-epoch metrics."""

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.models import Job, JobEvent, JobMetric, JobStatus, utcnow

METRIC_FIELDS = ("loss", "val_loss", "accuracy", "val_accuracy", "mae", "val_mae",
                 "learning_rate", "duration_s", "samples_per_s")


class JobRepository:
    def __init__(self, session: Session):
        self.session = session

    def add(self, job: Job) -> Job:
        self.session.add(job)
        self.session.add(JobEvent(job_id=job.id, status=job.status, at=job.created_at))
        self.session.flush()
        return job

    def get(self, job_id: str) -> Job | None:
        return self.session.get(Job, job_id)

    def get_by_submission(self, owner_id: int, submission_id: str) -> Job | None:
        return self.session.scalar(
            select(Job).where(Job.owner_id == owner_id, Job.submission_id == submission_id)
        )

    def page(self, owner_id: int | None, status: str | None, limit: int,
             offset: int) -> list[Job]:
        query = select(Job).order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)
        if owner_id is not None:
            query = query.where(Job.owner_id == owner_id)
        if status is not None:
            query = query.where(Job.status == status)
        return list(self.session.scalars(query))

    def claim(self, job_id: str, worker: str) -> bool:
        """queued → running in one conditional update: of two deliveries, one wins."""
        now = utcnow()
        result = self.session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.queued)
            .values(status=JobStatus.running, attempt=Job.attempt + 1, worker=worker,
                    started_at=now, heartbeat_at=now)
        )
        if result.rowcount != 1:
            return False
        self.session.add(JobEvent(job_id=job_id, status=JobStatus.running, at=now,
                                  detail=f"worker {worker}"))
        return True

    def finish(self, job_id: str, status: JobStatus, *, reason: str | None = None,
               **values: Any) -> None:
        now = utcnow()
        self.session.execute(
            update(Job).where(Job.id == job_id)
            .values(status=status, finished_at=now, failure_reason=reason, **values)
        )
        self.session.add(JobEvent(job_id=job_id, status=status, at=now, detail=reason))

    def record_epoch(self, job_id: str, epoch: int, metrics: dict[str, Any],
                     best: dict[str, Any]) -> None:
        """Upsert the epoch's row on (job_id, epoch) and advance the job's progress."""
        row = {"job_id": job_id, "epoch": epoch, "recorded_at": utcnow(),
               **{k: metrics.get(k) for k in METRIC_FIELDS}}
        insert = pg_insert if self.session.bind.dialect.name == "postgresql" else sqlite_insert
        statement = insert(JobMetric).values(**row)
        self.session.execute(statement.on_conflict_do_update(
            index_elements=["job_id", "epoch"],
            set_={k: statement.excluded[k] for k in (*METRIC_FIELDS, "recorded_at")},
        ))
        self.session.execute(
            update(Job).where(Job.id == job_id)
            .values(epochs_done=epoch, best_metrics=best, heartbeat_at=utcnow())
        )

    def events(self, job_id: str) -> list[JobEvent]:
        return list(self.session.scalars(
            select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
        ))

    def metrics(self, job_id: str, after_epoch: int = 0) -> list[JobMetric]:
        return list(self.session.scalars(
            select(JobMetric)
            .where(JobMetric.job_id == job_id, JobMetric.epoch > after_epoch)
            .order_by(JobMetric.epoch)
        ))
