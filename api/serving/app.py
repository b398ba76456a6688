"""The serving component's ASGI app: the prediction routes, answered in front of the API.

A prediction is the one request an app makes thousands of times a second, and on a small model
FastAPI's routing, dependency solving and middleware cost more than the inference. This app
owns its paths (`OPERATIONS`): a POST is served with its own key lookup, body cap and timeout,
errors (rendered by the API's handlers, so both answer alike) and metrics; any other method is
refused with 405 as Starlette's router would; every other path goes on to FastAPI. FastAPI still
documents the operations: `documented_routes` builds them as it would for the OpenAPI document.
"""

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from re import Pattern
from typing import Any, get_type_hints

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import HANDLERS, internal_error
from api.metrics import Metrics, StatusRecorder
from api.schemas.models import PredictByNameIn, PredictIn, PredictOut
from api.serving import predict, v2
from api.serving.auth import bearer_key, principal_for
from api.serving.body import read_body, refuse_declared_length
from api.serving.request import ServingRequest
from core.cache import ExpiringCache
from core.services.inference import InferenceService
from core.settings import Settings

MB = 1024 * 1024
# What metrics record for a request whose client went away before its body arrived.
CLIENT_CLOSED = 499


@dataclass
class Operation:
    """A prediction route: its path, its endpoint, and what documents it."""

    path: str
    endpoint: Callable[..., Awaitable[Response]]
    tags: list[str]
    openapi_extra: dict[str, Any]
    response_model: type | None = None
    regex: Pattern[str] = field(init=False)
    # The path's parameters that are more than text, checked as the endpoint declares them (a
    # version is bounded).
    checked: dict[str, TypeAdapter] = field(init=False)

    def __post_init__(self) -> None:
        self.regex = compile_path(self.path)[0]
        hints = get_type_hints(self.endpoint, include_extras=True)
        self.checked = {name: TypeAdapter(hints[name]) for name in self.regex.groupindex
                        if hints[name] is not str}

    def arguments(self, found: dict[str, str]) -> dict[str, Any]:
        """The path's parameters as the endpoint takes them, refused in FastAPI's words."""
        values: dict[str, Any] = dict(found)
        errors: list[Any] = []
        for name, adapter in self.checked.items():
            try:
                values[name] = adapter.validate_python(found[name])
            except ValidationError as error:
                errors += [{**e, "loc": ("path", name, *e["loc"])} for e in error.errors()]
        if errors:
            raise RequestValidationError(errors)
        return values


OPERATIONS = (
    Operation("/models/{name}/predict", predict.predict, ["models"],
              predict.openapi(PredictIn), PredictOut),
    Operation("/predict", predict.predict_by_body, ["models"],
              predict.openapi(PredictByNameIn), PredictOut),
    Operation("/v2/models/{name}/infer", v2.infer, ["v2"], v2.INFER_OPENAPI),
    Operation("/v2/models/{name}/versions/{version}/infer", v2.infer, ["v2"], v2.INFER_OPENAPI),
)


def documented_routes() -> list[APIRoute]:
    """The operations as FastAPI routes, for the OpenAPI document only: never routed to."""
    return [APIRoute(op.path, op.endpoint, methods=["POST"], tags=list(op.tags),
                     response_model=op.response_model, openapi_extra=op.openapi_extra)
            for op in OPERATIONS]


class ServingApp:
    def __init__(self, api: ASGIApp, settings: Settings, principals: ExpiringCache,
                 inference: InferenceService, metrics: Metrics):
        """`api`: where every other request goes; `principals`: the cache of key lookups the
        API shares."""
        self.api, self.settings, self.principals = api, settings, principals
        self.inference, self.metrics = inference, metrics
        self.max_bytes = settings.max_body_mb * MB

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # Matched as Starlette's router matches: on the path below the app's root path.
            path, root = scope["path"], scope.get("root_path", "")
            path = path[len(root):] if root and path.startswith(root) else path
            for operation in OPERATIONS:
                found = operation.regex.match(path)
                if found:
                    await self._serve(operation, found.groupdict(), scope, receive, send)
                    return
        await self.api(scope, receive, send)

    async def _serve(self, operation: Operation, found: dict[str, str], scope: Scope,
                     receive: Receive, send: Send) -> None:
        started, recorder = time.perf_counter(), StatusRecorder(send)
        request = ServingRequest(scope)
        try:
            try:
                response = await self._answer(operation, found, request, receive)
            except ClientDisconnect:
                recorder.status = CLIENT_CLOSED  # nobody left to answer
                return
            except Exception as error:
                handler = next(h for kind, h in HANDLERS.items() if isinstance(error, kind))
                await (await handler(request, error))(scope, receive, recorder)
                if handler is internal_error:
                    raise  # for the server to log, as FastAPI's own error layer does
                return
            await response(scope, receive, recorder)
        finally:
            self.metrics.observe(scope["method"], operation.path, recorder.status,
                                 time.perf_counter() - started)

    async def _answer(self, operation: Operation, found: dict[str, str],
                      request: ServingRequest, receive: Receive) -> Response:
        if request.method != "POST":
            raise HTTPException(405, headers={"Allow": "POST"})
        arguments = operation.arguments(found)
        refuse_declared_length(request.headers, self.max_bytes)
        request.principal = await principal_for(self.settings, self.principals,
                                                bearer_key(request.headers))
        request.inference = self.inference
        request.content = await read_body(receive, self.max_bytes, self.settings.body_timeout_s)
        return await operation.endpoint(request, **arguments)
