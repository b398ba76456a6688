"""Training jobs: submit, list, read, cancel, per-epoch metrics (their event streams are in
`api.routes.events`)."""

import csv
import io
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import PlainTextResponse

from api.bodies import JobBody
from api.deps import PrincipalDep, SessionDep, SettingsDep
from api.schemas.base import Count
from api.schemas.evaluation import Evaluation
from api.schemas.jobs import JobList, JobOut, MetricRow
from core.job_options import parse_options
from core.models import Job, JobStatus
from core.services.code import job_code
from core.services.jobs import JobService
from ml.epochs import METRIC_FIELDS

router = APIRouter(prefix="/jobs", tags=["jobs"])
CSV_COLUMNS = ("epoch", *METRIC_FIELDS)


def job_out(service: JobService, job: Job, with_timeline: bool = True) -> JobOut:
    return JobOut.model_validate({
        **{c: getattr(job, c) for c in JobOut.model_fields if hasattr(job, c)},
        "epochs": job.spec["training"]["epochs"],
        "timeline": service.timeline(job) if with_timeline else [],
    })


@router.post("", status_code=202, response_model=JobOut)
def submit_job(body: JobBody, principal: PrincipalDep,
               session: SessionDep, settings: SettingsDep, response: Response) -> JobOut:
    options, spec = parse_options(body)
    service = JobService(session, settings)
    job, created = service.submit(principal, spec, options)
    if not created:
        response.status_code = 200
    response.headers["Location"] = f"/jobs/{job.id}"
    return job_out(service, job)


@router.get("", response_model=JobList)
def list_jobs(principal: PrincipalDep, session: SessionDep, settings: SettingsDep,
              status: JobStatus | None = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50,
              offset: Annotated[Count, Query()] = 0) -> JobList:
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
                after_epoch: Annotated[Count, Query()] = 0) -> list[MetricRow]:
    rows = JobService(session, settings).metrics(principal, job_id, after_epoch)
    return [MetricRow.model_validate(row) for row in rows]


@router.get("/{job_id}/metrics.csv", response_class=PlainTextResponse)
def job_metrics_csv(job_id: str, principal: PrincipalDep, session: SessionDep,
                    settings: SettingsDep) -> PlainTextResponse:
    rows = JobService(session, settings).metrics(principal, job_id, 0)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(["" if getattr(row, c) is None else getattr(row, c) for c in CSV_COLUMNS])
    return PlainTextResponse(out.getvalue(), media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{job_id}-metrics.csv"'})


@router.get("/{job_id}/evaluation", response_model=Evaluation, response_model_exclude_unset=True)
def job_evaluation(job_id: str, principal: PrincipalDep, session: SessionDep,
                   settings: SettingsDep) -> Evaluation:
    """The succeeded job's report on its held-out test split: confusion matrix, per-class
    precision, recall and F1, curves for binary tasks, misclassified samples; or regression
    errors and residuals."""
    return Evaluation.model_validate(JobService(session, settings).evaluation(principal, job_id))


@router.get("/{job_id}/code", response_class=PlainTextResponse)
def job_script(job_id: str, principal: PrincipalDep, session: SessionDep,
               settings: SettingsDep,
               framework: Annotated[Literal["pytorch", "tensorflow"] | None, Query(
                   description="the script's framework (default: the job's)")] = None,
               ) -> PlainTextResponse:
    """The job as a standalone plain PyTorch or Keras script: the same network, data, split,
    preprocessing, optimizer, epochs, batch size and seed."""
    script = job_code(session, settings, principal, job_id, framework)
    return PlainTextResponse(script, media_type="text/x-python", headers={
        "Content-Disposition": f'inline; filename="{job_id}-{framework or "script"}.py"'})


@router.post("/{job_id}/cancel", response_model=JobOut)
def cancel_job(job_id: str, principal: PrincipalDep, session: SessionDep,
               settings: SettingsDep) -> JobOut:
    service = JobService(session, settings)
    return job_out(service, service.cancel(principal, job_id))
