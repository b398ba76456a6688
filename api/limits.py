"""ASGI middleware capping request bodies before anything spools them; a route may have a
larger cap of its own (dataset uploads)."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response
from core.errors import PayloadTooLarge


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int,
                 route_limits: dict[tuple[str, str], int] | None = None):
        """`route_limits`: {(method, path): bytes} for routes whose bodies may be larger."""
        self.app, self.max_bytes, self.route_limits = app, max_bytes, route_limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.route_limits.get((scope["method"], scope["path"]), self.max_bytes)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, limit)
            return
        received = 0

        async def counting_receive() -> Message:
            # Raised in the route that reads the body, whose error handlers answer it.
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(_exceeds(limit))
            return message

        await self.app(scope, counting_receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        await error_response(413, "payload_too_large", _exceeds(limit))(scope, receive, send)


def _exceeds(limit: int) -> str:
    return f"request body exceeds {limit} bytes"
