"""FastAPI dependencies: settings, a database session per request, the caller's principal."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from core.db import session_factory, session_scope
from core.services.auth import AuthService, Principal, hash_key
from core.services.inference import InferenceService
from core.settings import Settings


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    session = session_factory(settings)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]
_bearer = HTTPBearer(auto_error=False)


def _authenticate(settings: Settings, key: str | None) -> Principal:
    with session_scope(settings) as session:
        return AuthService(session).authenticate(key)


async def get_principal(
    request: Request, settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    key = credentials.credentials if credentials else None
    # Keyed by the hash, as stored: the process keeps no key in the clear.
    cache_key = hash_key(key) if key else None
    principal = request.app.state.principals.get(cache_key) if key else None
    if principal is None:
        principal = await run_in_threadpool(_authenticate, settings, key)
        request.app.state.principals.put(cache_key, principal)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def require_person(principal: PrincipalDep) -> None:
    """For routers whose every route needs a member's or admin's key (not an app key)."""
    principal.check_person()


async def get_inference(request: Request, settings: SettingsDep) -> InferenceService:
    state = request.app.state
    return InferenceService(settings, state.predictors, state.targets, state.batcher)


InferenceDep = Annotated[InferenceService, Depends(get_inference)]
