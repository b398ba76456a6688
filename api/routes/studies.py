"""Studies: submit, list, read (trials and the best so far), cancel, the trials' events and CSV,
and publishing the best trial's model."""

import asyncio
import csv
import io
import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from api.bodies import job_body
from api.deps import PrincipalDep, SessionDep, SettingsDep
from api.routes.events import MAX_EVENTS_PER_POLL, POLL_S, event_payload
from api.schemas.base import Count
from api.schemas.studies import (
    BestOut,
    Importance,
    PublishBody,
    Published,
    StudyList,
    StudyOut,
    TrialOut,
)
from core.db import session_scope
from core.models import Study, StudyStatus
from core.services.auth import Principal
from core.services.studies import StudyService, Trial
from core.settings import Settings
from core.studies import StudyDefinition

router = APIRouter(prefix="/studies", tags=["studies"])


def study_out(service: StudyService, study: Study, counts: dict[str, int] | None = None,
              with_trials: bool = True) -> StudyOut:
    definition = service.definition(study)
    curves = service.curves(study) if with_trials else {}
    trials = service.trials(study, curves) if with_trials else []
    best = service.best(study, trials)
    return StudyOut(
        id=study.id, name=study.name, status=study.status,
        objective=definition.objective.model_dump(), sampler=definition.sampler,
        pruner=definition.pruning.type, max_trials=definition.trials,
        max_concurrent=definition.max_concurrent, publish=definition.publish,
        trials_started=study.trials_started,
        counts=counts if counts is not None else dict(Counter(t.status for t in trials)),
        created_at=study.created_at, deadline=study.deadline, finished_at=study.finished_at,
        definition=study.definition,
        trials=[_trial_out(trial, curves.get(trial.job_id or "", {})) for trial in trials],
        best=BestOut(**{k: getattr(best, k) for k in BestOut.model_fields}) if best else None)


def _trial_out(trial: Trial, curve: dict[int, float]) -> TrialOut:
    return TrialOut(**trial._asdict(),
                    curve=[{"epoch": epoch, "value": value} for epoch, value in curve.items()])


@router.post("", status_code=202, response_model=StudyOut)
def submit_study(body: Annotated[StudyDefinition, Body()], principal: PrincipalDep,
                 session: SessionDep, settings: SettingsDep, response: Response) -> StudyOut:
    job_body(body.base, settings)  # the base's layers within the limit before it is parsed
    service = StudyService(session, settings)
    study = service.submit(principal, body.model_dump(mode="json", by_alias=True,
                                                      exclude_none=True))
    response.headers["Location"] = f"/studies/{study.id}"
    return study_out(service, study)


@router.get("", response_model=StudyList)
def list_studies(principal: PrincipalDep, session: SessionDep, settings: SettingsDep,
                 limit: Annotated[int, Query(ge=1, le=500)] = 50,
                 offset: Annotated[Count, Query()] = 0) -> StudyList:
    service = StudyService(session, settings)
    studies = service.page(principal, limit, offset)
    counts = service.trial_counts(studies)
    return StudyList(items=[study_out(service, study, counts[study.id], with_trials=False)
                            for study in studies], limit=limit, offset=offset)


@router.get("/{study_id}", response_model=StudyOut)
def get_study(study_id: str, principal: PrincipalDep, session: SessionDep,
              settings: SettingsDep) -> StudyOut:
    service = StudyService(session, settings)
    return study_out(service, service.get(principal, study_id))


@router.get("/{study_id}/importance", response_model=Importance)
def study_importance(study_id: str, principal: PrincipalDep, session: SessionDep,
                     settings: SettingsDep) -> Importance:
    """Each dimension's share of the objective's variation among the succeeded trials
    (Optuna's fANOVA); empty before three trials have succeeded."""
    service = StudyService(session, settings)
    study = service.get(principal, study_id)
    return Importance(importance=service.importance(study),
                      trials=sum(1 for t in service.trials(study) if t.status == "succeeded"))


@router.post("/{study_id}/cancel", response_model=StudyOut)
def cancel_study(study_id: str, principal: PrincipalDep, session: SessionDep,
                 settings: SettingsDep) -> StudyOut:
    service = StudyService(session, settings)
    return study_out(service, service.cancel(principal, study_id))


@router.post("/{study_id}/publish", response_model=Published)
def publish_best(study_id: str, principal: PrincipalDep, session: SessionDep,
                 settings: SettingsDep,
                 body: Annotated[PublishBody | None, Body()] = None) -> Published:
    """Publish the best trial so far as a version of its model (if the study has not), and
    point `alias` at it."""
    alias = body.alias if body is not None else None
    return Published(**StudyService(session, settings).publish_best(principal, study_id, alias))


@router.get("/{study_id}/trials.csv", response_class=PlainTextResponse)
def trials_csv(study_id: str, principal: PrincipalDep, session: SessionDep,
               settings: SettingsDep) -> PlainTextResponse:
    service = StudyService(session, settings)
    study = service.get(principal, study_id)
    paths = list(service.definition(study).space)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["number", "job_id", "status", "value", *paths, "epochs_done",
                     "model_version", "pruned_reason", "failure_reason"])
    for trial in service.trials(study):
        writer.writerow([trial.number, trial.job_id or "", trial.status, _cell(trial.value),
                         *(_cell(trial.params.get(path)) for path in paths), trial.epochs_done,
                         _cell(trial.model_version), trial.pruned_reason or "",
                         trial.failure_reason or ""])
    return PlainTextResponse(out.getvalue(), media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{study_id}-trials.csv"'})


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _readable_study(study_id: str, principal: PrincipalDep, settings: SettingsDep) -> str:
    """The study's id once the caller may read it: its 404 comes before the stream."""
    with session_scope(settings) as session:
        StudyService(session, settings).get(principal, study_id)
    return study_id


def _study_events(settings: Settings, principal: Principal, study_id: str,
                  after_id: int) -> tuple[list[ServerSentEvent], bool]:
    with session_scope(settings) as session:
        service = StudyService(session, settings)
        study = service.get(principal, study_id)
        events = [ServerSentEvent(id=str(event.id), event=event.kind,
                                  data={"job_id": event.job_id, "trial": number,
                                        **event_payload(event)})
                  for event, number in service.studies.events(study.id, after_id,
                                                              MAX_EVENTS_PER_POLL)]
        over = (study.status != StudyStatus.running
                and not service.studies.active_trials(study.id))
        return events, over


@router.get("/{study_id}/events", response_class=EventSourceResponse)
async def study_events(study_id: Annotated[str, Depends(_readable_study)],
                       principal: PrincipalDep, settings: SettingsDep,
                       last_event_id: Annotated[Count | None, Header()] = None,
                       after: Annotated[Count, Query()] = 0) -> AsyncIterator[ServerSentEvent]:
    """Server-Sent Events of every trial: the `status` and `epoch` events of a job's stream,
    each with its `job_id` and `trial` number; `Last-Event-ID` (or `after`) resumes after an
    event; an `end` event once the study is over and no trial runs."""
    last = last_event_id or after
    while True:
        events, over = await run_in_threadpool(_study_events, settings, principal, study_id,
                                               last)
        for event in events:
            yield event
        if events:
            last = int(events[-1].id or last)
        elif over:
            with session_scope(settings) as session:
                status = StudyService(session, settings).get(principal, study_id).status
            yield ServerSentEvent(event="end", data={"status": status})
            return
        await asyncio.sleep(POLL_S)
