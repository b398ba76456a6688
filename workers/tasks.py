"""Celery tasks: thin wrappers that load a job by id and call its service."""

import os
import socket

from core.broker import TRAIN_TASK
from core.services.training import TrainingService
from core.settings import get_settings
from workers.celery_app import app


@app.task(name=TRAIN_TASK, bind=True)
def train(self, job_id: str) -> None:
    worker = f"{self.request.hostname or socket.gethostname()}/{os.getpid()}"
    TrainingService(get_settings()).run(job_id, worker)
