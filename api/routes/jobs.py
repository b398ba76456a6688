"""Training jobs: submit, list, read, per-epoch metrics."""

import asyncio
import csv
import io
import json
import time
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, StreamingResponse

from api.bodies import JobBody
from api.deps import PrincipalDep, SessionDep, SettingsDep
from api.schemas.base import Count
from api.schemas.jobs import Event, JobList, JobOut, MetricRow
from core.db import session_scope
from core.job_options import parse_options
from core.models import FINISHED_STATUSES, Job, JobEvent, JobStatus
from core.repositories.jobs import METRIC_FIELDS
from core.services.jobs import JobService

router = APIRouter(prefix="/jobs", tags=["jobs"])
CSV_COLUMNS = ("epoch", *METRIC_FIELDS)
SSE_POLL_S = 0.25
SSE_KEEPALIVE_S = 10.0


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


@router.post("/{job_id}/cancel", response_model=JobOut)
def cancel_job(job_id: str, principal: PrincipalDep, session: SessionDep,
               settings: SettingsDep) -> JobOut:
    service = JobService(session, settings)
    return job_out(service, service.cancel(principal, job_id))


@router.get("/{job_id}/events")
async def job_events(job_id: str, request: Request, principal: PrincipalDep,
                     settings: SettingsDep,
                     last_event_id: Annotated[Count | None, Header()] = None,
                     after: Annotated[Count, Query()] = 0) -> StreamingResponse:
    """Server-Sent Events: `status` and `epoch` events with ids; `Last-Event-ID` (or `after`)
    resumes after an event; a comment every few seconds keeps proxies from closing the
    stream, which ends with an `end` event once the job has finished."""

    def read(after_id: int) -> tuple[list[dict], str]:
        with session_scope(settings) as session:
            service = JobService(session, settings)
            job = service.get(principal, job_id)
            return [event_payload(e) for e in service.events(job, after_id)], job.status

    await run_in_threadpool(read, 0)  # 404 or 403 before the stream starts

    async def stream():
        last, quiet_since = last_event_id or after, time.monotonic()
        while not await request.is_disconnected():
            events, status = await run_in_threadpool(read, last)
            for event in events:
                last = event["id"]
                yield (f"id: {event['id']}\nevent: {event['kind']}\n"
                       f"data: {json.dumps(event['data'])}\n\n")
                quiet_since = time.monotonic()
            if not events and status in FINISHED_STATUSES:
                yield f"event: end\ndata: {json.dumps({'status': status})}\n\n"
                return
            if time.monotonic() - quiet_since > SSE_KEEPALIVE_S:
                yield ": keep-alive\n\n"
                quiet_since = time.monotonic()
            await asyncio.sleep(SSE_POLL_S)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def event_payload(event: JobEvent) -> dict:
    if event.kind == "epoch":
        data = event.data
    else:
        data = {"status": event.status, "detail": event.detail,
                "at": Event.model_validate(event).model_dump()["at"]}
    return {"id": event.id, "kind": event.kind, "data": data}
