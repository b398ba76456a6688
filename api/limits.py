"""ASGI middleware bounding request bodies before anything spools them: their size (a route
may have a larger cap of its own: dataset uploads) and the wait for each of their pieces.

Written by hand because it stands in front of the prediction routes, which `api.dispatch`
serves ahead of FastAPI, and uvicorn times out idle connections but not a body that stops
arriving. Both refusals are raised from `receive` in the route that reads the body, whose
error handlers answer them; they are `HTTPException`s because FastAPI passes those through
while it reads a body (any other error there becomes a 400 "error parsing the body").
"""

import asyncio

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import CLOSE, error_response


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"request body exceeds {limit} bytes")


class BodyTimedOut(HTTPException):
    def __init__(self, timeout_s: float):
        # The rest of the body may still come: the connection cannot carry another request.
        super().__init__(408, f"the request body stopped arriving: nothing came for "
                              f"{timeout_s:g} s", headers=CLOSE)


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int,
                 route_limits: dict[tuple[str, str], int] | None = None,
                 timeout_s: float | None = None):
        """`route_limits`: {(method, path): bytes} for routes whose bodies may be larger;
        `timeout_s`: the longest wait for the next piece of a body (None: no limit)."""
        self.app, self.max_bytes, self.route_limits = app, max_bytes, route_limits or {}
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.route_limits.get((scope["method"], scope["path"]), self.max_bytes)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await error_response(413, "payload_too_large",
                                 BodyTooLarge(limit).detail)(scope, receive, send)
            return
        received, complete = 0, False

        async def limited_receive() -> Message:
            nonlocal received, complete
            if complete:  # past the body: a wait for the client to disconnect is not bounded
                return await receive()
            try:
                async with asyncio.timeout(self.timeout_s):
                    message = await receive()
            except TimeoutError:
                raise BodyTimedOut(self.timeout_s) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
                complete = not message.get("more_body", False)
            return message

        await self.app(scope, limited_receive, send)
