"""The message broker: the Celery application (DESIGN §6 settings), the one way a job is sent to
its workers, and what the broker holds (for the reconciler and readiness)."""

import json
import re
from collections.abc import Iterable
from functools import lru_cache

from celery import Celery

from core.settings import Settings

TRAIN_TASK = "capas.train"
QUEUES = ("cpu", "cuda")


def make_celery(settings: Settings) -> Celery:
    app = Celery("capas", broker=settings.celery_broker_url)
    if settings.is_embedded_broker:
        settings.ensure_dirs()
        folder = str(settings.broker_dir / "queue")
        transport = {"data_folder_in": folder, "data_folder_out": folder,
                     "processed_folder": str(settings.broker_dir / "processed"),
                     "control_folder": str(settings.broker_dir / "control"),
                     "store_processed": False,
                     "polling_interval": settings.broker_poll_interval_s}
    else:
        # Longer than the longest allowed run, so Redis never redelivers a running job.
        transport = {"visibility_timeout": settings.max_runtime_s + 3600,
                     "polling_interval": settings.broker_poll_interval_s}
    app.conf.update(
        broker_transport_options=transport,
        broker_connection_retry_on_startup=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue="cpu",
        task_serializer="json",
        accept_content=["json"],
        # Keras leaks memory across fits: recycle the child, keeping its framework import
        # for as many jobs as memory allows.
        worker_max_memory_per_child=settings.worker_max_memory_mb * 1024,
        # A new process imports its frameworks before it reports for work (4 s here, more on
        # a loaded host); the default of 4 s would kill it as hung.
        worker_proc_alive_timeout=120,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


@lru_cache(maxsize=4)
def _celery_for(settings_json: str) -> Celery:
    return make_celery(Settings.model_validate_json(settings_json))


def celery_for(settings: Settings) -> Celery:
    return _celery_for(settings.model_dump_json())


def forget_connections() -> None:
    """In a forked child: build producers anew rather than share the parent's sockets."""
    _celery_for.cache_clear()


def send_job(settings: Settings, job_id: str, queue: str) -> None:
    """Send the training message of a job (`core.services.dispatch` notes that it was sent)."""
    celery_for(settings).send_task(TRAIN_TASK, args=[job_id], queue=queue)


_JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _job_ids(raw_messages: Iterable[bytes | str]) -> set[str]:
    """Job ids named in Celery messages (the task's argument, in the `argsrepr` header)."""
    ids = set()
    for raw in raw_messages:
        try:
            message = json.loads(raw)
        except ValueError:
            continue
        if isinstance(message, list):  # Redis "unacked": [message, exchange, routing key]
            message = message[0]
        ids.update(_JOB_ID.findall(str(message.get("headers", {}).get("argsrepr", ""))))
    return ids


def messages_in_flight(settings: Settings) -> set[str]:
    """Ids of the jobs whose message the broker holds, waiting or delivered but not acked."""
    if settings.is_embedded_broker:
        folder = settings.broker_dir / "queue"
        return _job_ids(path.read_bytes() for path in folder.glob("*.msg")
                        if path.is_file())
    import redis

    client = redis.Redis.from_url(settings.celery_broker_url)
    raw = [item for queue in QUEUES for item in client.lrange(queue, 0, -1)]
    raw.extend(client.hvals("unacked"))
    return _job_ids(raw)


def broker_reachable(settings: Settings) -> bool:
    try:
        with celery_for(settings).connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:
        return False
