"""FastAPI dependencies: settings, a database session per request, the caller's principal."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.serving.auth import principal_for
from core.db import session_factory
from core.services.auth import Principal
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


async def get_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Whoever the key belongs to, an app included: for `/me` and the prediction protocols."""
    return await principal_for(request.app.state.settings, request.app.state.principals,
                               credentials.credentials if credentials else None)


CallerDep = Annotated[Principal, Depends(get_caller)]


async def get_principal(caller: CallerDep) -> Principal:
    """A member or an admin: an app key only predicts, so every other route refuses it."""
    caller.check_person()
    return caller


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_inference(request: Request) -> InferenceService:
    return request.app.state.inference


InferenceDep = Annotated[InferenceService, Depends(get_inference)]
