"""Queries on job events across jobs, for a user's one event stream: the events of every job an
owner has (of every job, for no owner) after an id."""

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.models import Job, JobEvent


class EventRepository:
    def __init__(self, session: Session):
        self.session = session

    def latest_id(self) -> int:
        """The id of the newest event of any job (0 before the first): where "from now" starts."""
        return self.session.scalar(select(func.max(JobEvent.id))) or 0

    def after(self, owner_id: int | None, after_id: int, limit: int) -> list[JobEvent]:
        """The first `limit` events after `after_id` of the jobs `owner_id` owns (of all jobs,
        for None), oldest first."""
        query = (select(JobEvent).where(JobEvent.id > after_id).order_by(JobEvent.id)
                 .limit(limit))
        if owner_id is not None:
            query = query.join(Job, Job.id == JobEvent.job_id).where(Job.owner_id == owner_id)
        return list(self.session.scalars(query))
