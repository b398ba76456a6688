"""The reconciler: no accepted job is lost, whatever happens to workers or the broker.

It runs in every worker. It announces the worker's queues, re-queues running jobs whose
worker stopped beating (they resume from their last epoch checkpoint) or fails them after
`max_attempts` (a worker that died while it handed its job back on an operator's stop
costs the job no attempt), and re-sends queued jobs whose message the broker no longer
holds (Redis here keeps nothing on disk). It also starts the next trials of every running
study, so that a study whose worker died as a trial ended does not stall. Every change is a
conditional update, so several reconcilers never act twice on one job, and a duplicate
message is dropped by the claim.
"""

import logging
from datetime import datetime, timedelta

from core.broker import messages_in_flight
from core.db import session_scope
from core.models import Job, JobStatus, utcnow
from core.repositories.jobs import JobRepository
from core.repositories.workers import WorkerRepository
from core.services.dispatch import dispatch
from core.services.studies import StudyService
from core.settings import Settings

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(self, settings: Settings, node: str, queues: list[str]):
        self.settings, self.node, self.queues = settings, node, queues
        self.started = utcnow()

    def startup(self) -> None:
        """Jobs this node held before it (re)started died with it: recover them now."""
        with session_scope(self.settings) as session:
            orphans = JobRepository(session).running_on(f"{self.node}/", self.started)
        self._recover(orphans, f"worker {self.node} restarted", stale_before=None)

    def run_once(self) -> None:
        now = utcnow()
        with session_scope(self.settings) as session:
            WorkerRepository(session).announce(self.node, self.queues)
            stale_before = now - timedelta(seconds=self.settings.heartbeat_stale_s)
            stale = JobRepository(session).stale_running(stale_before)
            unsent = JobRepository(session).queued_unsent_since(
                now - timedelta(seconds=self.settings.resend_grace_s))
        self._recover(stale, f"worker lost (no heartbeat for "
                             f"{self.settings.heartbeat_stale_s:g} s)", stale_before)
        if unsent:
            in_flight = messages_in_flight(self.settings)
            for job in unsent:
                if job.id not in in_flight:
                    log.warning("job %s is queued but its message is gone; re-sent", job.id)
                    dispatch(self.settings, job.id, job.queue)
        with session_scope(self.settings) as session:
            StudyService(session, self.settings).advance_all()

    def _recover(self, jobs: list[Job], reason: str, stale_before: datetime | None) -> None:
        for job in jobs:
            with session_scope(self.settings) as session:
                repository = JobRepository(session)
                # A job its worker was asked to hand back gets that attempt back (requeue).
                if job.attempt >= job.max_attempts and job.stop_requested != "release":
                    repository.finish_if(job.id, JobStatus.running, JobStatus.failed,
                                         f"{reason}; gave up after {job.attempt} attempts")
                    continue
                requeued = repository.requeue(job.id, f"{reason}; resumes from its last "
                                                      "epoch checkpoint",
                                              worker=job.worker, stale_before=stale_before)
            if requeued:
                log.warning("job %s re-queued: %s", job.id, reason)
                dispatch(self.settings, job.id, job.queue)
