"""The FastAPI application factory."""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from api import dashboard, errors, openapi
from api.dispatch import ServingDispatch
from api.limits import BodySizeLimit
from api.metrics import Metrics, MetricsMiddleware
from api.metrics import router as metrics_router
from api.routes import datasets, health, jobs, models, specs, users, v2
from api.uploads import remove_abandoned_uploads, upload_body_limit
from core.cache import ExpiringCache
from core.services.inference import InferenceService
from core.services.registry import PredictorCache
from core.settings import Settings, get_settings
from ml.serving import AdaptiveBatcher


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
    """FastAPI entered through `front`: the body cap and the metrics around every request, and
    the prediction routes answered there, ahead of FastAPI's own middleware (`api.dispatch`)."""

    front: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self  # what `request.app` reads, on either way through
        await self.front(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """FastAPI's own way: its middleware stack, then its router."""
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> CapasAPI:
    settings = settings or get_settings()
    app = CapasAPI(title="Capas", version="0.1.0", lifespan=_lifespan,
                  description="Train and serve neural networks from a declarative layer spec.")
    app.state.settings = settings
    app.state.predictors = PredictorCache(settings.model_cache_size)
    app.state.principals = ExpiringCache(settings.lookup_cache_s)
    app.state.targets = ExpiringCache(settings.lookup_cache_s)
    app.state.inference = InferenceService(settings, app.state.predictors, app.state.targets,
                                           AdaptiveBatcher(settings.inline_inference_ms / 1000))
    errors.install(app)
    openapi.install(app)
    app.state.metrics = Metrics(settings)
    for router in (health.router, metrics_router, specs.router, jobs.router, models.router,
                   models.serving_router, datasets.router, users.router, v2.router,
                   v2.serving_router):
        app.include_router(router)
    dashboard.install(app)  # last: its `/static` mount must not shadow an API route
    serving = ServingDispatch(app.handle,
                              routes=[*models.serving_router.routes, *v2.serving_router.routes])
    app.front = BodySizeLimit(MetricsMiddleware(serving, metrics=app.state.metrics),
                              max_bytes=settings.max_body_mb * 1024 * 1024,
                              route_limits={("POST", "/datasets"): upload_body_limit(settings)},
                              timeout_s=settings.body_timeout_s)
    return app
