"""Queries on jobs, their timeline events and per-epoch metrics."""

from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, Result, case, delete, func, or_, select, update
from sqlalchemy.orm import Session

from core.models import FINISHED_STATUSES, Job, JobEvent, JobMetric, JobStatus, utcnow
from core.repositories import dialect_insert
from ml.epochs import METRIC_FIELDS


class JobRepository:
    def __init__(self, session: Session):
        self.session = session

    def add(self, job: Job) -> Job:
        self.session.add(job)
        self.session.flush()
        self._event(job.id, job.status, None, job.created_at)
        return job

    def cancel_queued(self, job_id: str) -> bool:
        return self.finish_if(job_id, JobStatus.queued, JobStatus.cancelled, "cancelled by user")

    def finish_if(self, job_id: str, current: JobStatus, status: JobStatus,
                  reason: str) -> bool:
        result = self.session.execute(
            update(Job).where(Job.id == job_id, Job.status == current)
            .values(status=status, finished_at=utcnow(), failure_reason=reason))
        if _rowcount(result) != 1:
            return False
        self._event(job_id, status, reason)
        return True

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

    def count_by_status(self) -> dict[str, int]:
        return dict(self.session.execute(
            select(Job.status, func.count()).group_by(Job.status)).all())

    def count_active(self, owner_id: int) -> int:
        return self.session.scalar(
            select(func.count()).select_from(Job).where(
                Job.owner_id == owner_id,
                Job.status.in_((JobStatus.queued, JobStatus.running)))) or 0

    def claim(self, job_id: str, worker: str) -> bool:
        """queued → running in one conditional update: of two deliveries, one wins."""
        now = utcnow()
        result = self.session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.queued)
            .values(status=JobStatus.running, attempt=Job.attempt + 1, worker=worker,
                    started_at=now, heartbeat_at=now, stop_requested=None)
        )
        if _rowcount(result) != 1:
            return False
        self._event(job_id, JobStatus.running, f"worker {worker}", now)
        return True

    def _event(self, job_id: str, status: str, detail: str | None,
               at: datetime | None = None) -> None:
        self.session.add(JobEvent(job_id=job_id, kind="status", status=status, detail=detail,
                                  at=at or utcnow()))

    def finish(self, job_id: str, status: JobStatus, *, worker: str | None = None,
               reason: str | None = None, **values: Any) -> bool:
        """End a job; with `worker`, only if that worker still holds it (not re-queued)."""
        now = utcnow()
        query = update(Job).where(Job.id == job_id, Job.status.not_in(FINISHED_STATUSES))
        if worker is not None:
            query = query.where(Job.worker == worker, Job.status == JobStatus.running)
        result = self.session.execute(
            query.values(status=status, finished_at=now, failure_reason=reason,
                         stop_requested=None, **values))
        if _rowcount(result) != 1:
            return False
        self._event(job_id, status, reason, now)
        return True

    def requeue(self, job_id: str, reason: str, *, worker: str | None = None,
                stale_before: datetime | None = None) -> bool:
        """running → queued (its checkpoint resumes it), if the holder is still as seen.

        A job handed back because its worker was asked to stop gets its attempt back: an
        operator's stop is not a failed attempt, however the worker ended.
        """
        query = update(Job).where(Job.id == job_id, Job.status == JobStatus.running)
        if worker is not None:
            query = query.where(Job.worker == worker)
        if stale_before is not None:
            query = query.where(Job.heartbeat_at < stale_before)
        attempt = case((Job.stop_requested == "release", Job.attempt - 1), else_=Job.attempt)
        result = self.session.execute(query.values(status=JobStatus.queued, worker=None,
                                                   attempt=attempt, stop_requested=None,
                                                   sent_at=None))
        if _rowcount(result) != 1:
            return False
        self._event(job_id, JobStatus.queued, reason)
        return True

    def request_stop(self, job_id: str, kind: str) -> bool:
        result = self.session.execute(
            update(Job).where(Job.id == job_id, Job.status == JobStatus.running)
            .values(stop_requested=kind))
        return _rowcount(result) == 1

    def release_all(self, worker_prefix: str) -> list[str]:
        """Ask every job a worker node holds to stop and go back to the queue (a job asked to
        stop already, cancelled or handed back, keeps its request); returns the jobs asked."""
        jobs = list(self.session.scalars(
            select(Job.id).where(Job.status == JobStatus.running,
                                 Job.worker.startswith(worker_prefix),
                                 Job.stop_requested.is_(None))))
        for job_id in jobs:
            self.request_stop(job_id, "release")
        return jobs

    def queued_unsent(self, job_ids: list[str]) -> list[Job]:
        """Those of `job_ids` that wait in the queue with no message sent for them."""
        return list(self.session.scalars(
            select(Job).where(Job.id.in_(job_ids), Job.status == JobStatus.queued,
                              Job.sent_at.is_(None))))

    def beat(self, job_id: str, worker: str) -> str | None:
        """Heartbeat of a running job; returns its stop request ("cancel", "release"), or
        "lost" when this worker no longer holds it."""
        row = self.session.execute(
            update(Job).where(Job.id == job_id, Job.worker == worker,
                              Job.status == JobStatus.running)
            .values(heartbeat_at=utcnow()).returning(Job.stop_requested)).first()
        return "lost" if row is None else row[0]

    def set_model_version(self, job_id: str, version: int) -> None:
        self.session.execute(update(Job).where(Job.id == job_id).values(model_version=version))

    def mark_sent(self, job_id: str) -> None:
        self.session.execute(update(Job).where(Job.id == job_id).values(sent_at=utcnow()))

    def stale_running(self, heartbeat_before: datetime) -> list[Job]:
        return list(self.session.scalars(
            select(Job).where(Job.status == JobStatus.running,
                              Job.heartbeat_at < heartbeat_before)))

    def running_on(self, worker_prefix: str, claimed_before: datetime) -> list[Job]:
        return list(self.session.scalars(
            select(Job).where(Job.status == JobStatus.running,
                              Job.worker.startswith(worker_prefix),
                              Job.started_at < claimed_before)))

    def queued_unsent_since(self, before: datetime) -> list[Job]:
        """Queued jobs whose last message is older than `before` (or was never sent)."""
        return list(self.session.scalars(
            select(Job).where(Job.status == JobStatus.queued,
                              or_(Job.sent_at.is_(None), Job.sent_at < before),
                              Job.created_at < before)))

    def record_epoch(self, job_id: str, epoch: int, metrics: dict[str, Any],
                     best: dict[str, Any]) -> None:
        self.record_epochs(job_id, [(epoch, metrics)], best)

    def record_epochs(self, job_id: str, epochs: list[tuple[int, dict[str, Any]]],
                      best: dict[str, Any]) -> None:
        """Upsert each epoch's row on (job_id, epoch), replace its event, and advance the job
        to the last; four statements however many epochs.

        A resumed job that trains an epoch again overwrites its row, and its event moves to a
        new id: a stream read from the start shows each epoch once, with its final values, and
        one resumed past the old event (`Last-Event-ID`) still gets the new one.
        """
        now = utcnow()
        rows = [{"job_id": job_id, "epoch": epoch, "recorded_at": now,
                 **{k: metrics.get(k) for k in METRIC_FIELDS}} for epoch, metrics in epochs]
        insert = dialect_insert(self.session)
        statement = insert(JobMetric).values(rows)
        self.session.execute(statement.on_conflict_do_update(
            index_elements=["job_id", "epoch"],
            set_={k: statement.excluded[k] for k in (*METRIC_FIELDS, "recorded_at")},
        ))
        self.session.execute(
            update(Job).where(Job.id == job_id)
            .values(epochs_done=epochs[-1][0], best_metrics=best, heartbeat_at=now)
        )
        numbers = [row["epoch"] for row in rows]
        self.session.execute(delete(JobEvent).where(JobEvent.job_id == job_id,
                                                    JobEvent.epoch.in_(numbers)))
        events = insert(JobEvent).values([
            {"job_id": job_id, "kind": "epoch", "epoch": row["epoch"],
             "status": JobStatus.running, "at": now,
             "data": {k: v for k, v in row.items() if k not in ("job_id", "recorded_at")}}
            for row in rows])
        # Two writers at once (a worker that has not yet seen it lost the job): the last wins.
        self.session.execute(events.on_conflict_do_update(
            index_elements=["job_id", "epoch"],
            set_={"data": events.excluded.data, "at": events.excluded.at}))

    def events(self, job_id: str, after_id: int = 0, kind: str | None = None) -> list[JobEvent]:
        query = (select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > after_id)
                 .order_by(JobEvent.id))
        if kind is not None:
            query = query.where(JobEvent.kind == kind)
        return list(self.session.scalars(query))

    def metrics(self, job_id: str, after_epoch: int = 0) -> list[JobMetric]:
        return list(self.session.scalars(
            select(JobMetric)
            .where(JobMetric.job_id == job_id, JobMetric.epoch > after_epoch)
            .order_by(JobMetric.epoch)
        ))


def _rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE matched. SQLAlchemy types a session's results as `Result`; an
    UPDATE's is a `CursorResult`, which counts them."""
    assert isinstance(result, CursorResult)
    return result.rowcount
