"""The language itself: the catalog of names and validation of a draft spec."""

from functools import cache
from pathlib import PurePath
from typing import Any

from fastapi import APIRouter

from api.bodies import JobBody
from api.deps import PrincipalDep, SessionDep, SettingsDep
from api.errors import echoed
from core.job_options import parse_options
from core.models import FINISHED_STATUSES, JobStatus
from core.services.specs import SpecService
from ml.artifacts import FORMAT_FILES
from ml.spec import catalog

router = APIRouter(tags=["specs"])


@cache
def _catalog() -> dict[str, Any]:
    """The language, and the service's own names that the dashboard and the CLI show: the job
    statuses (which are final) and the download formats (with their files' suffixes)."""
    return {
        **catalog(),
        "job_statuses": [{"name": status.value, "finished": status in FINISHED_STATUSES}
                         for status in JobStatus],
        "formats": [{"name": name, "suffix": PurePath(filename).suffix}
                    for name, filename in FORMAT_FILES.items()],
    }


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
