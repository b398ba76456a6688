"""Users and API keys: the caller, keys shown once and revoked, users made by an admin."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from api.deps import CallerDep, PrincipalDep, SessionDep
from api.schemas.base import Id
from api.schemas.users import KeyCreated, KeyIn, KeyOut, Me, UserCreated, UserIn
from core.services.auth import AuthService

router = APIRouter(tags=["users"])


@router.get("/me", response_model=Me)
def me(principal: CallerDep) -> Me:
    return Me(id=principal.id, name=principal.name, role=principal.role,
              models=list(principal.models) or None)


@router.post("/users", status_code=201, response_model=UserCreated)
def create_user(body: UserIn, principal: PrincipalDep, session: SessionDep) -> UserCreated:
    """An admin adds a member (a student), an admin (an instructor) or an app (predict only,
    with the models named); the answer holds the user's first key, shown this once."""
    principal.check_admin()
    user, key = AuthService(session).create_user(body.name, body.role, body.models)
    return UserCreated(id=user.id, name=user.name, role=user.role, models=user.models,
                       api_key=key)


@router.get("/users", response_model=list[Me])
def list_users(principal: PrincipalDep, session: SessionDep) -> list[Me]:
    return [Me(id=u.id, name=u.name, role=u.role, models=u.models)
            for u in AuthService(session).users_all(principal)]


@router.post("/keys", status_code=201, response_model=KeyCreated)
def create_key(body: KeyIn, principal: PrincipalDep, session: SessionDep) -> KeyCreated:
    """A new key for the caller (or, for an admin, any user): shown this once."""
    auth = AuthService(session)
    key, record = auth.create_key(auth.user(principal, body.user_id))
    return KeyCreated(**KeyOut.model_validate(record).model_dump(), api_key=key)


@router.get("/keys", response_model=list[KeyOut])
def list_keys(principal: PrincipalDep, session: SessionDep,
              user_id: Annotated[Id | None, Query()] = None) -> list[KeyOut]:
    return [KeyOut.model_validate(k) for k in AuthService(session).keys(principal, user_id)]


@router.delete("/keys/{key_id}", status_code=204)
def revoke_key(key_id: Id, request: Request, principal: PrincipalDep,
               session: SessionDep) -> Response:
    key_hash = AuthService(session).revoke_key(principal, key_id)
    # Committed before this process forgets the key, so that no request between the two
    # loads it back as still valid; other processes forget it within their cache's lifetime.
    session.commit()
    request.app.state.principals.discard(lambda cached: cached == key_hash)
    return Response(status_code=204)
