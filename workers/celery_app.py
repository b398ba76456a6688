"""The worker's Celery app: `python -P -m workers worker -Q cpu` (or `capas worker`).

Besides the training task, each worker runs the reconciler in a thread of its main process
and hands its jobs back to the queue when it is asked to stop; every forked child resets the
connections it inherited and imports the frameworks before it takes a job.
"""

import logging
import threading
import uuid

from celery import signals
from celery.exceptions import WorkerShutdown
from celery.worker.control import control_command

from core.broker import forget_connections, make_celery
from core.db import reset_after_fork, session_scope
from core.repositories.jobs import JobRepository
from core.services.dispatch import dispatch
from core.services.reconciler import Reconciler
from core.settings import Settings, get_settings

log = logging.getLogger(__name__)
app = make_celery(get_settings())
app.conf.imports = ("workers.tasks",)
_stop = threading.Event()  # the worker was asked to stop
_stopped = threading.Event()  # its pool has finished: nothing runs or is taken here any more
_handed_back: set[str] = set()
# Names this run of the worker in the message that wakes its event loop: the embedded broker
# keeps a message the loop did not read, and the node's next run must not take it for its own.
_run = uuid.uuid4().hex


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
def _hand_jobs_back(sender: str, **_) -> None:
    """SIGTERM or Ctrl-C (Celery's warm shutdown): the running jobs stop within a batch,
    checkpoint and go back to the queue, then the worker exits.

    Called in the signal handler, so the work is done in a thread: it asks this node's jobs
    to stop until the pool has finished (a job claimed meanwhile is asked too), and wakes the
    worker's event loop, which otherwise sees the signal only when its broker poll ends (up to
    2 s with the embedded broker, and then it polls once more).
    """
    if _stop.is_set():
        return  # a second signal: already stopping
    _stop.set()
    threading.Thread(target=_ask_jobs_back, args=(sender,), name="capas-stop",
                     daemon=True).start()


def _ask_jobs_back(node: str) -> None:
    settings = get_settings()
    try:
        app.control.broadcast("capas_stop", arguments={"run": _run}, destination=[node])
    except Exception:  # the broker is out: the event loop sees the signal a little later
        log.exception("could not wake this worker's event loop")
    while True:
        try:
            with session_scope(settings) as session:
                asked = JobRepository(session).release_all(f"{node}/")
        except Exception:  # the database is out: the reconcilers recover the jobs later
            log.exception("could not ask this worker's jobs to stop")
            return
        if asked:
            log.warning("stopping: handing back jobs %s", asked)
            _handed_back.update(asked)
        if _stopped.wait(settings.job_poll_interval_s):
            return


@control_command(args=[("run", str)], signature="<run>")
def capas_stop(state, run: str) -> None:
    """End this run's event loop now; Celery's warm shutdown goes on (the pool's jobs finish
    handing themselves back)."""
    if run == _run:
        raise WorkerShutdown(0)


@signals.worker_shutdown.connect
def _send_jobs_handed_back(**_) -> None:
    """The pool has finished and this worker takes no more jobs: send the ones it handed
    back, so that another worker resumes them now (a restarted one, in embedded mode)."""
    _stopped.set()
    if not _handed_back:
        return
    settings = get_settings()
    with session_scope(settings) as session:
        waiting = [(job.id, job.queue)
                   for job in JobRepository(session).queued_unsent(sorted(_handed_back))]
    for job_id, queue in waiting:
        dispatch(settings, job_id, queue)
