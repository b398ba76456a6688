"""The Celery application (DESIGN §6 settings) and the one way jobs are sent to workers."""

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
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


@lru_cache(maxsize=4)
def _celery_for(settings_json: str) -> Celery:
    return make_celery(Settings.model_validate_json(settings_json))


def celery_for(settings: Settings) -> Celery:
    return _celery_for(settings.model_dump_json())


def enqueue_training(settings: Settings, job_id: str, queue: str) -> None:
    celery_for(settings).send_task(TRAIN_TASK, args=[job_id], queue=queue)


def broker_reachable(settings: Settings) -> bool:
    try:
        with celery_for(settings).connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:
        return False
