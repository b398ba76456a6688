"""Who sent a request: the bearer key read as `HTTPBearer` reads it, then looked up by its hash.

The lookup goes through the process's short-lived cache of principals, which the API's own
dependency (`api.deps.get_caller`) shares, so that a revoked key is forgotten by both at once.
"""

from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import Headers

from core.cache import ExpiringCache
from core.db import session_scope
from core.services.auth import AuthService, Principal, hash_key
from core.settings import Settings


def bearer_key(headers: Headers) -> str | None:
    """The key of `Authorization: Bearer <key>`, or None when there is none."""
    scheme, _, key = headers.get("authorization", "").partition(" ")
    key = key.strip()
    return key if scheme.lower() == "bearer" and key else None


def authenticate(settings: Settings, key: str | None) -> Principal:
    with session_scope(settings) as session:
        return AuthService(session).authenticate(key)


async def principal_for(settings: Settings, principals: ExpiringCache,
                        key: str | None) -> Principal:
    if not key:
        return authenticate(settings, key)  # refused before any lookup
    # Keyed by the hash, as stored: the process keeps no key in the clear.
    return await principals.get_or_load(
        hash_key(key), lambda: run_in_threadpool(authenticate, settings, key))
