"""Queries on studies and their trials (the jobs that name a study), with the trials' per-epoch
values of one metric and their events."""

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.models import Job, JobEvent, JobMetric, JobStatus, Study, StudyStatus
from core.repositories.jobs import _rowcount


class StudyRepository:
    def __init__(self, session: Session):
        self.session = session

    def add(self, study: Study) -> Study:
        self.session.add(study)
        self.session.flush()
        return study

    def get(self, study_id: str) -> Study | None:
        return self.session.get(Study, study_id)

    def page(self, owner_id: int | None, limit: int, offset: int) -> list[Study]:
        query = (select(Study).order_by(Study.created_at.desc(), Study.id)
                 .limit(limit).offset(offset))
        if owner_id is not None:
            query = query.where(Study.owner_id == owner_id)
        return list(self.session.scalars(query))

    def running_ids(self) -> list[str]:
        return list(self.session.scalars(
            select(Study.id).where(Study.status == StudyStatus.running)))

    def trials(self, study_id: str) -> list[Job]:
        return list(self.session.scalars(
            select(Job).where(Job.study_id == study_id).order_by(Job.trial_number)))

    def trial_counts(self, study_ids: list[str]) -> dict[str, dict[str, int]]:
        """Per study, how many of its trials are in each job status."""
        counts: dict[str, dict[str, int]] = {study_id: {} for study_id in study_ids}
        rows = self.session.execute(
            select(Job.study_id, Job.status, func.count()).where(Job.study_id.in_(study_ids))
            .group_by(Job.study_id, Job.status)).all()
        for study_id, status, count in rows:
            counts[str(study_id)][status] = count
        return counts

    def take_numbers(self, study_id: str, started: int, count: int) -> bool:
        """Take trial numbers `started`…`started + count - 1` for the caller, if the study still
        runs and no one took them first; held (PostgreSQL locks the row) until commit."""
        result = self.session.execute(
            update(Study).where(Study.id == study_id, Study.status == StudyStatus.running,
                                Study.trials_started == started)
            .values(trials_started=started + count))
        return _rowcount(result) == 1

    def end(self, study_id: str, status: StudyStatus, at: datetime) -> bool:
        """running → `status`, once: of two processes that end a study, one does."""
        result = self.session.execute(
            update(Study).where(Study.id == study_id, Study.status == StudyStatus.running)
            .values(status=status, finished_at=at))
        return _rowcount(result) == 1

    def active_trials(self, study_id: str) -> list[Job]:
        return list(self.session.scalars(
            select(Job).where(Job.study_id == study_id,
                              Job.status.in_((JobStatus.queued, JobStatus.running)))))

    def metric_values(self, study_id: str, metric: str) -> dict[str, dict[int, float]]:
        """Each trial's value of `metric` at each epoch it recorded, by job id."""
        column = getattr(JobMetric, metric)
        rows = self.session.execute(
            select(JobMetric.job_id, JobMetric.epoch, column)
            .join(Job, Job.id == JobMetric.job_id)
            .where(Job.study_id == study_id, column.is_not(None))
            .order_by(JobMetric.job_id, JobMetric.epoch)).all()
        values: dict[str, dict[int, float]] = {}
        for job_id, epoch, value in rows:
            values.setdefault(job_id, {})[epoch] = value
        return values

    def events(self, study_id: str, after_id: int, limit: int) -> list[tuple[JobEvent, int]]:
        """The first `limit` events of the study's trials after `after_id`, each with its
        trial's number, oldest first."""
        rows: Any = self.session.execute(
            select(JobEvent, Job.trial_number).join(Job, Job.id == JobEvent.job_id)
            .where(Job.study_id == study_id, JobEvent.id > after_id)
            .order_by(JobEvent.id).limit(limit)).all()
        return [(event, number) for event, number in rows]

    def set_unpublished(self, job_id: str, record: dict[str, Any] | None) -> None:
        self.session.execute(update(Job).where(Job.id == job_id).values(unpublished=record))
