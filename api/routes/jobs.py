"""Training jobs: submit, list, read, per-epoch metrics."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response

from api.deps import PrincipalDep, SessionDep, SettingsDep
from api.schemas import JobList, JobOut, MetricRow
from core.errors import Invalid
from core.models import Job, JobStatus
from core.services.jobs import JobService

router = APIRouter(prefix="/jobs", tags=["jobs"])


def job_out(service: JobService, job: Job, with_timeline: bool = True) -> JobOut:
    return JobOut.model_validate({
        **{c: getattr(job, c) for c in JobOut.model_fields if hasattr(job, c)},
        "epochs": job.spec["training"]["epochs"],
        "timeline": service.timeline(job) if with_timeline else [],
    })


def _job_option(body: dict[str, Any], name: str, kind: type, positive: bool) -> Any:
    value = body.pop(name, None)
    if value is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool) or (positive and value <= 0):
        expected = "a positive integer" if positive else "a string"
        raise Invalid(f"{name}: expected {expected}, received {value!r}",
                      [{"field": name, "value": value}])
    return value


@router.post("", status_code=202, response_model=JobOut)
def submit_job(body: Annotated[dict[str, Any], Body()], principal: PrincipalDep,
               session: SessionDep, settings: SettingsDep, response: Response) -> JobOut:
    body = dict(body)
    submission_id = _job_option(body, "submission_id", str, positive=False)
    max_runtime_s = _job_option(body, "max_runtime_s", int, positive=True)
    service = JobService(session, settings)
    job, created = service.submit(principal, body, submission_id, max_runtime_s)
    if not created:
        response.status_code = 200
    response.headers["Location"] = f"/jobs/{job.id}"
    return job_out(service, job)


@router.get("", response_model=JobList)
def list_jobs(principal: PrincipalDep, session: SessionDep, settings: SettingsDep,
              status: JobStatus | None = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50,
              offset: Annotated[int, Query(ge=0)] = 0) -> JobList:
    service = JobService(session, settings)
    jobs = service.page(principal, status, limit, offset)
    return JobList(items=[job_out(service, job, with_timeline=False) for job in jobs],
                   limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: str, principal: PrincipalDep, session: SessionDep,
            settings: SettingsDep) -> JobOut:
    service = JobService(session, settings)
    return job_out(service, service.get(principal, job_id))


@router.get("/{job_id}/metrics", response_model=list[MetricRow])
def job_metrics(job_id: str, principal: PrincipalDep, session: SessionDep,
                settings: SettingsDep,
                after_epoch: Annotated[int, Query(ge=0)] = 0) -> list[MetricRow]:
    rows = JobService(session, settings).metrics(principal, job_id, after_epoch)
    return [MetricRow.model_validate(row) for row in rows]
