"""The caller's identity."""

from fastapi import APIRouter

from api.deps import PrincipalDep
from api.schemas import Me

router = APIRouter(tags=["users"])


@router.get("/me", response_model=Me)
def me(principal: PrincipalDep) -> Me:
    return Me(id=principal.id, name=principal.name, role=principal.role)
