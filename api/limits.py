"""What the frameworks leave out of request body limits: the wait for each piece of a body, and
the error shape of Starlette's answer to a body declared too large.

Starlette caps a body's size (FastAPI's `max_body_size`, on the app and on the upload route),
but neither it nor uvicorn bounds the wait for a body that stops arriving: uvicorn times out
idle connections, not a request in progress. `next_message` bounds one wait, `BodyTimeout`
every wait of a body on FastAPI's routes (the serving component reads its bodies with
`next_message` itself). The refusal is an `HTTPException` because FastAPI passes those through
while it reads a body (any other error there becomes a 400 "error parsing the body").

A body past the cap as it arrives is refused through the app's error handlers, in the API's
shape; one whose declared length is past it, Starlette answers itself, in plain text, in place
of whatever the app answered: `BodyLimitErrorShape` puts that answer in the API's shape.
"""

import asyncio

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import CLOSE, HTTP_CODES, error_response, too_large


class BodyTimedOut(HTTPException):
    def __init__(self, timeout_s: float):
        # The rest of the body may still come: the connection cannot carry another request.
        super().__init__(408, f"the request body stopped arriving: nothing came for "
                              f"{timeout_s:g} s", headers=CLOSE)


async def next_message(receive: Receive, timeout_s: float | None) -> Message:
    """The next message of a request, refused with `BodyTimedOut` past `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s):
            return await receive()
    except TimeoutError:
        raise BodyTimedOut(timeout_s) from None


class BodyTimeout:
    """ASGI middleware: each piece of a request body must come within `timeout_s`."""

    def __init__(self, app: ASGIApp, timeout_s: float | None):
        self.app, self.timeout_s = app, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        complete = False

        async def timed_receive() -> Message:
            nonlocal complete
            if complete:  # past the body: a wait for the client to disconnect is not bounded
                return await receive()
            message = await next_message(receive, self.timeout_s)
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, timed_receive, send)


class BodyLimitErrorShape:
    """ASGI middleware, around FastAPI's own: Starlette's plain-text 413 in the API's shape."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replaced = False

        async def send_shaped(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return  # the rest of Starlette's plain-text answer
            if (message["type"] == "http.response.start" and message["status"] == 413
                    and MAX_BODY_SIZE_SCOPE_KEY in scope  # the limit is at work, and says which
                    and Headers(raw=message["headers"]).get("content-type", "").startswith(
                        "text/plain")):
                replaced = True
                limit = scope[MAX_BODY_SIZE_SCOPE_KEY]
                await error_response(413, HTTP_CODES[413], too_large(limit),
                                     request=Request(scope))(scope, receive, send)
                return
            await send(message)

        await self.app(scope, receive, send_shaped)
