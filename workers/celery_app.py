"""The worker's Celery app: `celery -A workers.celery_app worker -Q cpu` (or `capas worker`).

Besides the training task, each worker runs the reconciler in a thread of its main process,
gives its jobs back to the queue when it is asked to shut down; every forked child resets the
connections it inherited and imports the frameworks before it takes a job.
"""

import logging
import threading

from celery import signals

from core.db import reset_after_fork, session_scope
from core.queue import forget_connections, make_celery
from core.repositories.jobs import JobRepository
from core.services.reconciler import Reconciler
from core.settings import Settings, get_settings

log = logging.getLogger(__name__)
app = make_celery(get_settings())
app.conf.imports = ("workers.tasks",)
_stop = threading.Event()


@signals.worker_process_init.connect
def _child_started(**_) -> None:
    reset_after_fork()
    forget_connections()
    preload_frameworks(get_settings())


def preload_frameworks(settings: Settings) -> None:
    """Import the frameworks a job may need now, while no job waits (the pool gives the
    process `worker_proc_alive_timeout` to start): TensorFlow cannot be imported before the
    fork, its runtime does not survive one."""
    from ml.backends import get_backend

    for framework in settings.worker_preload:
        get_backend(framework).configure(settings.torch_threads)


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
