"""The language itself: the catalog of names and validation of a draft spec."""

from functools import cache
from typing import Any

from fastapi import APIRouter

from api.bodies import JobBody
from api.deps import PrincipalDep, SessionDep, SettingsDep
from api.errors import echoed
from core.job_options import parse_options
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
def validate_spec(body: JobBody, principal: PrincipalDep,
                  session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    """Per-layer output shapes, parameters and multiply-adds, the totals, and every error at
    once."""
    _, spec = parse_options(body)  # checked as `POST /jobs` checks them, then set aside
    inspection = SpecService(session, settings).inspect(principal, spec,
                                                        require_dataset=False).as_dict()
    return {**inspection, "errors": echoed(inspection["errors"])}
