"""The FastAPI application factory, with the serving component in front of it."""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp

from api import dashboard, errors, openapi
from api.limits import BodyLimitErrorShape, BodyTimeout
from api.metrics import Metrics, MetricsMiddleware
from api.metrics import router as metrics_router
from api.routes import datasets, events, health, jobs, models, specs, studies, users, v2
from api.serving.app import ServingApp, documented_routes
from api.uploads import remove_abandoned_uploads, upload_body_limit
from core.cache import ExpiringCache
from core.services.inference import InferenceService
from core.services.registry import PredictorCache
from core.settings import Settings, get_settings
from ml.serving import AdaptiveBatcher

MB = 1024 * 1024


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    remove_abandoned_uploads(app.state.settings)  # left by API processes that died mid-upload
    # The collector, left at its defaults, cost /predict at concurrency 32 a third of its
    # throughput and set its p99 (120 ms against 10). What exists once the app is up (modules,
    # routes, schemas: some 200k objects) lives as long as the process, yet every full
    # collection walked all of it; frozen, they are never walked again. And each request's
    # objects, alive while it waits for its batch, survived the young collections that ran
    # every 700 allocations and were promoted, triggering full collections every second; a
    # larger young generation lets them die young.
    gc.collect()  # what is garbage now must not be frozen with the rest
    gc.freeze()
    gc.set_threshold(10_000, 20, 10)
    yield


class CapasAPI(FastAPI):
    """FastAPI whose middleware stack has the serving component (`api.serving`) in front: the
    prediction routes are answered there, every other request by FastAPI as usual."""

    def build_middleware_stack(self) -> ASGIApp:
        state = self.state
        return ServingApp(BodyLimitErrorShape(super().build_middleware_stack()), state.settings,
                          state.principals, state.inference, state.metrics)


def create_app(settings: Settings | None = None) -> CapasAPI:
    settings = settings or get_settings()
    # FastAPI's OpenTelemetry is off: the API has its own Prometheus metrics, and with it on,
    # FastAPI reads the environment on every request to see whether a provider is configured
    # (a tenth of a small prediction's cost in the API).
    app = CapasAPI(title="Capas", version="0.1.0", lifespan=_lifespan,
                   description="Train and serve neural networks from a declarative layer spec.",
                   max_body_size=settings.max_body_mb * MB,
                   telemetry={"tracing": False, "metrics": False, "logs": False})
    app.state.settings = settings
    app.state.predictors = PredictorCache(settings.model_cache_size)
    app.state.principals = ExpiringCache(settings.lookup_cache_s)
    app.state.targets = ExpiringCache(settings.lookup_cache_s)
    app.state.inference = InferenceService(settings, app.state.predictors, app.state.targets,
                                           AdaptiveBatcher(settings.inline_inference_ms / 1000))
    app.state.metrics = Metrics(settings)
    errors.install(app)
    openapi.install(app, documented_routes())
    for router in (health.router, metrics_router, specs.router, jobs.router, events.router,
                   models.router, datasets.router, users.router, studies.router, v2.router):
        app.include_router(router)
    app.include_router(datasets.upload_router, max_body_size=upload_body_limit(settings))
    dashboard.install(app)  # last: its `/static` mount must not shadow an API route
    app.add_middleware(BodyTimeout, timeout_s=settings.body_timeout_s)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)  # outermost: times all
    return app
