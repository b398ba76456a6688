"""Prometheus metrics of the API process: requests, latency, jobs by status, live workers."""

import time
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import PrincipalDep
from core.db import session_scope
from core.models import JobStatus, utcnow
from core.repositories.jobs import JobRepository
from core.repositories.workers import WorkerRepository
from core.settings import Settings

router = APIRouter(tags=["health"])


class _StateCollector:
    """Read at scrape time from SQL, so every API process reports the same numbers."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def collect(self):
        with session_scope(self.settings) as session:
            counts = JobRepository(session).count_by_status()
            since = utcnow() - timedelta(seconds=self.settings.worker_alive_s)
            queues = WorkerRepository(session).alive_count_by_queue(since)
        jobs = GaugeMetricFamily("capas_jobs", "Jobs by status", labels=["status"])
        for status in JobStatus:
            jobs.add_metric([status.value], counts.get(status.value, 0))
        yield jobs
        workers = GaugeMetricFamily("capas_workers", "Workers seen recently, by queue",
                                    labels=["queue"])
        for queue in ("cpu", "cuda"):
            workers.add_metric([queue], queues.get(queue, 0))
        yield workers


class Metrics:
    def __init__(self, settings: Settings):
        self.registry = CollectorRegistry()
        self.requests = Counter("capas_http_requests_total", "HTTP requests",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("capas_http_request_duration_seconds", "HTTP request time",
                                 ["method", "route"], registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                          0.5, 1, 2.5, 5, 10))
        self.registry.register(_StateCollector(settings))
        # The labelled series by (method, route, status): resolving labels takes a lock and
        # builds tuples, a tenth of a small prediction's whole cost in the API.
        self.series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """One request answered, by its route template (not its path: bounded labels)."""
        key = (method, route, status)
        found = self.series.get(key)
        if found is None:
            found = self.series[key] = (self.requests.labels(method, route, str(status)),
                                        self.latency.labels(method, route))
        found[0].inc()
        found[1].observe(seconds)


class StatusRecorder:
    """`send`, noting the status of the answer it carries: 500 until an answer starts."""

    __slots__ = ("send", "status")

    def __init__(self, send: Send) -> None:
        self.send, self.status = send, 500

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self.send(message)


class MetricsMiddleware:
    """Counts and times every request FastAPI answers (the serving component counts its own)."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, recorder = time.perf_counter(), StatusRecorder(send)
        try:
            await self.app(scope, receive, recorder)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe(scope["method"], route, recorder.status,
                                 time.perf_counter() - started)


@router.get("/metrics")
def metrics(request: Request, principal: PrincipalDep) -> Response:
    """Prometheus exposition (an admin's key: `authorization` in the scrape config)."""
    principal.check_admin()
    return Response(generate_latest(request.app.state.metrics.registry),
                    media_type=CONTENT_TYPE_LATEST)
