"""Every error leaves the API as `{"error": {"code", "message", "details"}}`.

The Open Inference Protocol routes (`/v2/...`) answer errors in that protocol's own shape,
`{"error": "<message>"}` (plus `code` and `details` beside it), because its clients read
`error` as a string.
"""

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY

from core.errors import CapasError

HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 408: "request_timeout", 409: "conflict",
              413: "payload_too_large", 415: "unsupported_media_type", 422: "invalid",
              429: "too_many_requests", 503: "unavailable"}


V2_PREFIX = "/v2"
# A value echoed in an error's details, cut to its start past these sizes.
MAX_ECHO_CHARS, MAX_ECHO_ITEMS = 200, 20
# After a fault of ours the server drops the connection (uvicorn closes it once an exception
# has left the app), so the answer says so: a client must not send its next request on it.
CLOSE = {"Connection": "close"}


def too_large(limit: int) -> str:
    return f"request body exceeds {limit} bytes"


def _json_safe(value: Any, cut: bool = False) -> Any:
    """A value as JSON can carry it: NaN and infinities spelled out, bytes (a body that is not
    UTF-8) decoded with escapes; with `cut`, long strings and lists cut to their start."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, str) and cut and len(value) > MAX_ECHO_CHARS:
        return value[:MAX_ECHO_CHARS] + "…"
    if isinstance(value, dict):
        return {k: _json_safe(v, cut) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [_json_safe(v, cut) for v in value[:MAX_ECHO_ITEMS if cut else None]]
        return items + ["…"] if len(items) < len(value) else items
    return value


def echoed(details: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Error details as JSON can carry them. An echoed value is there to point at the mistake:
    a long one (a whole body that is not JSON, a name of 100,000 characters) is cut to its
    start."""
    return [{key: _json_safe(value, cut=key == "value") for key, value in detail.items()}
            for detail in details]


def error_response(status: int, code: str, message: str,
                   details: list[dict[str, Any]] | None = None,
                   headers: dict[str, str] | None = None,
                   request: Request | None = None) -> JSONResponse:
    details = echoed(details or [])
    if request is not None and request.url.path.startswith(V2_PREFIX):
        body = {"error": message, "code": code, "details": details}
    else:
        body = {"error": {"code": code, "message": message, "details": details}}
    return JSONResponse(jsonable_encoder(body), status_code=status, headers=headers)


def _field(loc: tuple) -> str:
    path = ""
    for part in loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    # A JSON decode error is located at ("body", offset): name the body itself.
    return path if path and not path.startswith("[") else str(loc[0])


async def capas_error(request: Request, exc: CapasError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return error_response(exc.status, exc.code, exc.message, exc.details, headers, request)


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    details = [{"field": _field(e["loc"]), "message": e["msg"], "value": e.get("input")}
               for e in exc.errors()]
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:3])
    return error_response(422, "invalid", f"invalid request: {summary}", details,
                          request=request)


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    message = str(exc.detail)
    if exc.status_code == 413 and MAX_BODY_SIZE_SCOPE_KEY in request.scope:
        # Starlette's body limit says only "Content Too Large"; the scope holds its limit.
        message = too_large(request.scope[MAX_BODY_SIZE_SCOPE_KEY])
    return error_response(exc.status_code, HTTP_CODES.get(exc.status_code, "error"), message,
                          headers=exc.headers, request=request)


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    """A fault of ours: nothing of it is shown to the client (the server logs it)."""
    return error_response(500, "internal", "internal server error", headers=CLOSE,
                          request=request)


# The handlers by exception type, most specific first, for the app and for the serving component
# in front of it (`api.serving`).
HANDLERS = {CapasError: capas_error, RequestValidationError: validation_error,
            HTTPException: http_error, Exception: internal_error}


def install(app: FastAPI) -> None:
    for exc_class, handler in HANDLERS.items():
        app.add_exception_handler(exc_class, handler)
