"""Server-Sent Events of training jobs, through FastAPI's own SSE support: a job's stream, which
replays the job from its start and ends with it, and the caller's one stream of all their jobs
(every job's, for an admin), which lasts as long as it is read. On both, an event's id is its
row's, and `Last-Event-ID` (or `after`) resumes after it; FastAPI sends a comment every few
seconds of silence, which keeps proxies from closing the stream."""

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.sse import EventSourceResponse, ServerSentEvent

from api.deps import PrincipalDep, SettingsDep
from api.schemas.base import Count
from api.schemas.jobs import Event
from core.db import session_scope
from core.models import FINISHED_STATUSES, JobEvent
from core.repositories.events import EventRepository
from core.services.auth import Principal
from core.services.jobs import JobService
from core.settings import Settings

router = APIRouter(tags=["jobs"])
POLL_S = 0.25
# The most events one poll of the caller's stream reads (one resuming from far back catches up
# over several).
MAX_EVENTS_PER_POLL = 500
# The caller's stream reads the ids of its last few polls again: under PostgreSQL an event can
# commit after one with a higher id was read (ids are drawn as rows are inserted, not as they
# commit), and reading only past the last id sent would lose it.
LOOK_BACK_POLLS = 8


def event_payload(event: JobEvent) -> dict:
    if event.kind == "epoch":
        return event.data
    return {"status": event.status, "detail": event.detail,
            "at": Event.model_validate(event).model_dump()["at"]}


def _sse(event: JobEvent, **extra: str) -> ServerSentEvent:
    return ServerSentEvent(id=str(event.id), event=event.kind,
                           data={**extra, **event_payload(event)})


def _readable_job(job_id: str, principal: PrincipalDep, settings: SettingsDep) -> str:
    """The job's id once the caller may read it: its 404 or 403 comes before the stream."""
    with session_scope(settings) as session:
        JobService(session, settings).get(principal, job_id)
    return job_id


def _job_events(settings: Settings, principal: Principal, job_id: str,
                after_id: int) -> tuple[list[ServerSentEvent], str]:
    with session_scope(settings) as session:
        service = JobService(session, settings)
        job = service.get(principal, job_id)
        return [_sse(event) for event in service.events(job, after_id)], job.status


@router.get("/jobs/{job_id}/events", response_class=EventSourceResponse)
async def job_events(job_id: Annotated[str, Depends(_readable_job)], principal: PrincipalDep,
                     settings: SettingsDep,
                     last_event_id: Annotated[Count | None, Header()] = None,
                     after: Annotated[Count, Query()] = 0) -> AsyncIterator[ServerSentEvent]:
    """Server-Sent Events: `status` and `epoch` events with ids; `Last-Event-ID` (or `after`)
    resumes after an event; a comment every few seconds keeps proxies from closing the
    stream, which ends with an `end` event once the job has finished."""
    last = last_event_id or after
    while True:
        events, status = await run_in_threadpool(_job_events, settings, principal, job_id, last)
        for event in events:
            yield event
        if events:
            last = int(events[-1].id)
        elif status in FINISHED_STATUSES:
            yield ServerSentEvent(event="end", data={"status": status})
            return
        await asyncio.sleep(POLL_S)


def _latest_id(settings: Settings) -> int:
    with session_scope(settings) as session:
        return EventRepository(session).latest_id()


def _caller_events(settings: Settings, owner_id: int | None,
                   after_id: int) -> list[ServerSentEvent]:
    with session_scope(settings) as session:
        return [_sse(event, job_id=event.job_id)
                for event in EventRepository(session).after(owner_id, after_id,
                                                             MAX_EVENTS_PER_POLL)]


@router.get("/events", response_class=EventSourceResponse)
async def caller_events(principal: PrincipalDep, settings: SettingsDep,
                        last_event_id: Annotated[Count | None, Header()] = None,
                        after: Annotated[Count | None, Query()] = None
                        ) -> AsyncIterator[ServerSentEvent]:
    """Server-Sent Events of every job of the caller (of every job, for an admin): the `status`
    and `epoch` events of a job's stream, each with its `job_id`. The stream starts now, or
    after the event `Last-Event-ID` (or `after`) names; its first event, `position`, carries
    the id it starts after, so that a client resumes from there even if nothing happens before
    it reconnects. It does not end; a comment every few seconds keeps proxies from closing it."""
    start = last_event_id if last_event_id is not None else after
    if start is None:
        start = await run_in_threadpool(_latest_id, settings)
    yield ServerSentEvent(id=str(start), event="position", data={"after": start})
    owner_id = principal.owner_filter()
    # The newest id sent as of each of the last polls; each poll reads past the oldest.
    newest = deque([start], maxlen=LOOK_BACK_POLLS)
    sent: set[int] = set()
    while True:
        events = await run_in_threadpool(_caller_events, settings, owner_id, newest[0])
        for event in events:
            if int(event.id) not in sent:
                sent.add(int(event.id))
                yield event
        newest.append(max([newest[-1], *sent]))
        sent = {event_id for event_id in sent if event_id > newest[0]}
        await asyncio.sleep(POLL_S)
