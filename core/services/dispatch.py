"""Sending a committed job to its workers' queue, and noting when, which the reconciler reads."""

from core.broker import send_job
from core.db import session_scope
from core.repositories.jobs import JobRepository
from core.settings import Settings


def dispatch(settings: Settings, job_id: str, queue: str) -> None:
    """The job's row is committed before this: a message lost after it is re-sent from the row."""
    send_job(settings, job_id, queue)
    with session_scope(settings) as session:
        JobRepository(session).mark_sent(job_id)
