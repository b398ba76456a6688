"""Domain errors carrying their HTTP status and code; the API renders them as `{"error": ...}`."""

from typing import Any


class CapasError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []


class Unauthorized(CapasError):
    status, code = 401, "unauthorized"


class Forbidden(CapasError):
    status, code = 403, "forbidden"


class NotFound(CapasError):
    status, code = 404, "not_found"


class Conflict(CapasError):
    status, code = 409, "conflict"


class PayloadTooLarge(CapasError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(CapasError):
    status, code = 415, "unsupported_media_type"


class Invalid(CapasError):
    status, code = 422, "invalid"


class TooManyRequests(CapasError):
    status, code = 429, "too_many_requests"


class Unavailable(CapasError):
    status, code = 503, "unavailable"
