"""The worker's Celery app: `celery -A workers.celery_app worker -Q cpu` (or `capas worker`)."""

from core.queue import make_celery
from core.settings import get_settings

app = make_celery(get_settings())
app.conf.imports = ("workers.tasks",)
