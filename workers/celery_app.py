"""The worker's Celery app: `celery -A workers.celery_app worker -Q cpu` (or `capas worker`).

Besides the training task, each worker runs the reconciler in a thread of its main process,
gives its jobs back to the queue when it is asked to shut down, and resets inherited
connections in every forked child.
"""

import logging
import threading

from celery import signals

from core.db import reset_after_fork, session_scope
from core.queue import make_celery
from core.repositories.jobs import JobRepository
from core.services.reconciler import Reconciler
from core.settings import get_settings

log = logging.getLogger(__name__)
app = make_celery(get_settings())
app.conf.imports = ("workers.tasks",)
_stop = threading.Event()


@signals.worker_process_init.connect
def _child_started(**_) -> None:
    reset_after_fork()


@signals.worker_ready.connect
def _start_reconciler(sender, **_) -> None:
    settings = get_settings()
    queues = sorted(queue.name for queue in sender.task_consumer.queues)
    reconciler = Reconciler(settings, sender.hostname, queues)

    def loop() -> None:
        reconciler.startup()
        while True:
            try:
                reconciler.run_once()
            except Exception:  # a database or broker outage must not end the loop
                log.exception("reconciler pass failed")
            if _stop.wait(settings.reconcile_interval_s):
                return

    threading.Thread(target=loop, name="capas-reconciler", daemon=True).start()


@signals.worker_shutting_down.connect
def _release_jobs(sender, **_) -> None:
    """Warm shutdown: running jobs checkpoint, go back to the queue, and the worker exits."""
    _stop.set()
    with session_scope(get_settings()) as session:
        released = JobRepository(session).release_all(f"{sender}/")
    if released:
        log.warning("shutting down: released jobs %s", released)
