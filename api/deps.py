"""FastAPI dependencies: settings, a database session per request, the caller's principal."""

from collections.abc import Iterator
from typing import Annotated, NamedTuple, TypeVar

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from core.db import session_factory, session_scope
from core.services.auth import AuthService, Principal, hash_key
from core.services.inference import InferenceService
from core.settings import Settings

ModelT = TypeVar("ModelT", bound=BaseModel)


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


async def _principal_for(request: Request, key: str | None) -> Principal:
    # Keyed by the hash, as stored: the process keeps no key in the clear.
    settings = request.app.state.settings
    if not key:
        return _authenticate(settings, key)  # refused before any lookup
    return await request.app.state.principals.get_or_load(
        hash_key(key), lambda: run_in_threadpool(_authenticate, settings, key))


async def get_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Whoever the key belongs to, an app included: for `/me` and the prediction protocols."""
    return await _principal_for(request, credentials.credentials if credentials else None)


CallerDep = Annotated[Principal, Depends(get_caller)]


async def get_principal(caller: CallerDep) -> Principal:
    """A member or an admin: an app key only predicts, so every other route refuses it."""
    caller.check_person()
    return caller


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_inference(request: Request) -> InferenceService:
    return request.app.state.inference


InferenceDep = Annotated[InferenceService, Depends(get_inference)]


class Serving(NamedTuple):
    principal: Principal
    inference: InferenceService


async def serving(request: Request) -> Serving:
    """The caller and the inference service for a prediction route, without dependencies.

    Each dependency FastAPI solves costs about as much as a small model's inference, so the
    hot routes take the request alone and read the bearer key the way `HTTPBearer` does.
    """
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip() if scheme.lower() == "bearer" and key.strip() else None
    return Serving(await _principal_for(request, key), request.app.state.inference)


# The OpenAPI operation fields of a route that authenticates through `serving`.
SERVING_SECURITY = {"security": [{"HTTPBearer": []}]}


def parse_body(model: type[ModelT], body: bytes) -> ModelT:
    """A JSON body validated by pydantic in one pass, its errors rendered like FastAPI's."""
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])}
                                      for e in error.errors()]) from None
