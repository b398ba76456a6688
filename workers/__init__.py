"""Celery workers: the app, its training task."""
