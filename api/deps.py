"""FastAPI dependencies: settings, a database session per request, the caller's principal."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from core.db import session_factory
from core.services.auth import AuthService, Principal
from core.services.inference import InferenceService
from core.settings import Settings


def get_settings(request: Request) -> Settings:
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


def get_principal(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    return AuthService(session).authenticate(credentials.credentials if credentials else None)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_inference(request: Request, session: SessionDep,
                  settings: SettingsDep) -> InferenceService:
    return InferenceService(session, settings, request.app.state.predictors,
                            request.app.state.batcher)


InferenceDep = Annotated[InferenceService, Depends(get_inference)]
