"""The language itself: the catalog of names and validation of a draft spec."""

from functools import cache
from typing import Annotated, Any

from fastapi import APIRouter, Body

from api.deps import PrincipalDep, SessionDep, SettingsDep
from core.services.specs import SpecService
from ml.spec import catalog

router = APIRouter(tags=["specs"])


@cache
def _catalog() -> dict[str, Any]:
    return catalog()


@router.get("/catalog")
def get_catalog(principal: PrincipalDep) -> dict[str, Any]:
    return _catalog()


@router.post("/specs/validate")
def validate_spec(body: Annotated[dict[str, Any], Body()], principal: PrincipalDep,
                  session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    """Per-layer output shapes, parameters and multiply-adds, the totals, and every error at
    once."""
    body = {k: v for k, v in body.items() if k not in ("submission_id", "max_runtime_s")}
    return SpecService(session, settings).inspect(principal, body,
                                                  require_dataset=False).as_dict()
