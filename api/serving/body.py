"""The body of a prediction request, read whole under the serving component's size cap, each
piece within the body timeout (`api.limits`)."""

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import Receive

from api.errors import too_large
from api.limits import next_message


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, too_large(limit))


def refuse_declared_length(headers: Headers, limit: int) -> None:
    """A body whose declared length is past `limit` is refused before a byte of it is read."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)


async def read_body(receive: Receive, limit: int, timeout_s: float | None) -> bytes:
    """The whole body, however it is sent (with a length or chunked), counted as it arrives."""
    chunks, received = [], 0
    while True:
        message = await next_message(receive, timeout_s)
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
