"""Studies: submit (every trial's job checked first), drive (start the next trials as others end),
prune, cancel, read, and publish the best trial; Optuna samples and prunes.

Optuna's storage. Optuna keeps a study in a storage; its SQL one (`RDBStorage`) creates a dozen
tables of its own and stamps their schema version with Alembic in `alembic_version`, the very
table that holds the revision of Capas's migrations, so the two would overwrite each other's
revision (and a trial's state would then live twice: in Optuna's tables and in the job's row,
free to disagree after a worker dies). So Optuna's state is Capas's own rows: a trial is a job
(`study_id`, `trial_number`, `trial_params`), its intermediate values are the job's per-epoch
metric rows, its state is the job's status. Whenever a decision is needed (the next trials to
start, whether to prune an epoch) an in-memory Optuna study is rebuilt from those rows
(`create_trial` / `add_trial`, and for successive halving the rung each trial reached) and asked.
That is one store, in the same database in both modes (SQLite embedded, PostgreSQL in cluster),
with no schema of Optuna's to migrate, and it cannot disagree with the jobs; the rebuild costs
milliseconds for the few hundred trials a study may have.

Grid dimensions are gone through in turn (trial n takes the grid's point n, again from the
first once all have run); Optuna's sampler (random, or TPE) draws the other dimensions.
"""

import json
import logging
import statistics
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.orm import Session

from core.errors import CapasError, Conflict, Invalid, NotFound
from core.job_options import JobOptions, parse_options
from core.models import FINISHED_STATUSES, Job, JobStatus, Study, StudyStatus, utcnow
from core.repositories.jobs import JobRepository
from core.repositories.models import ModelRepository
from core.repositories.studies import StudyRepository
from core.repositories.users import UserRepository
from core.services.auth import Principal
from core.services.dispatch import dispatch
from core.services.jobs import JobService
from core.services.registry import RegistryService
from core.settings import Settings
from core.studies import PathError, StudyDefinition, apply_params, parse_study

log = logging.getLogger(__name__)
optuna.logging.set_verbosity(optuna.logging.WARNING)

Clock = Callable[[], datetime]
# The name successive halving gives the value a trial had at a rung (optuna.pruners'
# `_completed_rung_key`): a rebuilt study carries each trial's rungs under it.
RUNG_KEY = "completed_rung_{}"


class Trial(NamedTuple):
    """A trial as `GET /studies/{id}` shows it."""

    number: int
    job_id: str | None
    params: dict[str, Any]
    status: str  # a job status, or "pruned"
    value: float | None
    pruned_reason: str | None
    failure_reason: str | None
    epochs_done: int
    metrics: dict[str, Any] | None  # the job's final metrics: its last epoch's, the test's
    model_version: int | None


def trial_status(job: Job) -> str:
    return "pruned" if job.pruned_reason is not None else job.status


class StudyService:
    def __init__(self, session: Session, settings: Settings, clock: Clock = utcnow):
        self.session, self.settings, self.clock = session, settings, clock
        self.studies = StudyRepository(session)
        self.jobs = JobService(session, settings)

    # Submit, read, cancel.

    def submit(self, principal: Principal, body: Any) -> Study:
        """Check the study and the jobs its space gives, then store it and start its first
        trials, in one transaction: a study refused changes nothing."""
        principal.check_person()
        definition = parse_study(body)
        options, base = self._options(definition)
        combinations = definition.corner_combinations()
        # Too many to check each: the first corners stand for the space (a trial that is
        # invalid later fails alone).
        for params in combinations or [{p: d.corners()[0] for p, d in definition.space.items()}]:
            self._check(principal, base, params)
        now = self.clock()
        study = self.studies.add(Study(
            id=str(uuid.uuid4()), owner_id=principal.id, name=definition.name,
            status=StudyStatus.running, definition=definition.model_dump(
                mode="json", by_alias=True, exclude_none=True),
            enumerated=combinations is not None, trials_started=0, invalid_trials=[],
            created_at=now, finished_at=None,
            deadline=(now + timedelta(seconds=definition.max_wall_time_s)
                      if definition.max_wall_time_s else None)))
        started = self._start(principal, study, definition, strict=True)
        self.session.commit()
        self._send(started)
        return study

    def _options(self, definition: StudyDefinition) -> tuple[JobOptions, dict[str, Any]]:
        try:
            options, base = parse_options(definition.base)
        except Invalid as error:
            raise Invalid(f"base.{error.message}", [
                {**detail, "field": f"base.{detail['field']}"} for detail in error.details
            ]) from None
        if options.submission_id is not None:
            raise Invalid("base.submission_id: a study's trials are submitted by the study; "
                          "leave it out", [{"field": "base.submission_id",
                                            "value": options.submission_id}])
        return options, base

    def _check(self, principal: Principal, base: dict[str, Any], params: dict[str, Any]) -> None:
        """Refuse the study if this combination gives an invalid job, naming the values."""
        body = self._body(base, params)
        try:
            spec, _ = self.jobs.validate(principal, body)
        except Invalid as error:
            raise Invalid(f"space: the trial with {_describe(params)} is invalid: "
                          f"{error.message}",
                          [{"field": f"space.{path}", "value": value}
                           for path, value in params.items()] + error.details) from None
        model = ModelRepository(self.session).get(spec.model.name, with_versions=False)
        if model is not None and model.owner_id != principal.id:
            raise Conflict(f"model.name: '{spec.model.name}' belongs to another user; choose "
                           "another name", [{"field": "base.model.name",
                                             "value": spec.model.name}])

    @staticmethod
    def _body(base: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        try:
            return apply_params(base, params)
        except PathError as error:
            raise Invalid(f"space.{error}", [{"field": f"space.{error.path}",
                                              "value": params[error.path]}]) from None

    def get(self, principal: Principal, study_id: str) -> Study:
        """The study, if the caller may see it: another member's answers as one that does not
        exist."""
        principal.check_person()
        study = self.studies.get(study_id)
        if study is None or not (principal.is_admin or study.owner_id == principal.id):
            raise NotFound(f"study '{study_id}' not found",
                           [{"field": "study_id", "value": study_id}])
        return study

    def page(self, principal: Principal, limit: int, offset: int) -> list[Study]:
        principal.check_person()
        return self.studies.page(principal.owner_filter(), limit, offset)

    def trial_counts(self, studies: list[Study]) -> dict[str, dict[str, int]]:
        return self.studies.trial_counts([study.id for study in studies])

    def cancel(self, principal: Principal, study_id: str) -> Study:
        """No trial starts after this; queued ones are cancelled at once, running ones within a
        batch."""
        study = self.get(principal, study_id)
        if not self.studies.end(study.id, StudyStatus.cancelled, self.clock()):
            raise Conflict(f"study '{study_id}' has already {study.status}; nothing to cancel",
                           [{"field": "status", "value": study.status}])
        repository = JobRepository(self.session)
        for job in self.studies.active_trials(study.id):
            if not repository.cancel_queued(job.id):
                repository.request_stop(job.id, "cancel")
        self.session.commit()
        self.session.refresh(study)
        return study

    def definition(self, study: Study) -> StudyDefinition:
        return StudyDefinition.model_validate(study.definition)

    def trials(self, study: Study,
               curves: dict[str, dict[int, float]] | None = None) -> list[Trial]:
        """Every trial, in order; `curves` (`self.curves(study)`) if the caller has them."""
        metric = self.definition(study).objective.metric
        values = curves if curves is not None else self.curves(study)
        trials = [Trial(job.trial_number or 0, job.id, job.trial_params or {}, trial_status(job),
                        _value(job, metric, values.get(job.id, {})), job.pruned_reason,
                        None if job.pruned_reason else job.failure_reason, job.epochs_done,
                        job.final_metrics, job.model_version)
                  for job in self.studies.trials(study.id)]
        trials += [Trial(item["number"], None, item["params"], JobStatus.failed, None, None,
                         item["reason"], 0, None, None) for item in study.invalid_trials]
        return sorted(trials, key=lambda trial: trial.number)

    def best(self, study: Study, trials: list[Trial]) -> Trial | None:
        """The succeeded trial with the best value (the first of equals)."""
        scored = [t for t in trials if t.status == JobStatus.succeeded and t.value is not None]
        if not scored:
            return None
        sign = 1 if self.definition(study).objective.direction == "maximize" else -1
        return max(scored, key=lambda t: (sign * (t.value or 0.0), -t.number))

    def curves(self, study: Study) -> dict[str, dict[int, float]]:
        """Each trial's objective per epoch, by job id."""
        return self.studies.metric_values(study.id, self.definition(study).objective.metric)

    def importance(self, study: Study) -> dict[str, float]:
        """How much of the objective's variation among the succeeded trials each dimension of
        the space explains (Optuna's fANOVA, the shares summing to 1); empty before three
        trials have succeeded or while no dimension varies."""
        definition = self.definition(study)
        distributions = _distributions(definition, with_grid=True)
        optimizer = optuna.create_study(direction=definition.objective.direction)
        for trial in self.trials(study):
            if trial.status == JobStatus.succeeded and trial.value is not None:
                optimizer.add_trial(optuna.trial.create_trial(
                    state=TrialState.COMPLETE, value=trial.value, distributions=distributions,
                    params={path: _internal(definition, path, trial.params[path])
                            for path in distributions}))
        if len(optimizer.trials) < 3:
            return {}
        try:
            found = optuna.importance.get_param_importances(
                optimizer, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
        except (RuntimeError, ValueError, ZeroDivisionError):  # no variation to explain
            return {}
        return {path: float(share) for path, share in found.items()}

    # Publishing.

    def publish_best(self, principal: Principal, study_id: str,
                     alias: str | None) -> dict[str, Any]:
        """Publish the best trial so far (if the study has not), and point `alias` at it."""
        study = self.get(principal, study_id)
        best = self.best(study, self.trials(study))
        if best is None or best.job_id is None:
            raise Conflict(f"study '{study_id}' has no succeeded trial to publish yet",
                           [{"field": "study_id", "value": study_id}])
        job = JobRepository(self.session).get(best.job_id)
        assert job is not None  # a trial's job
        version = job.model_version if job.model_version is not None else self._publish(job)
        if version is None:
            raise Conflict(f"trial {best.number} of study '{study_id}' kept no model to publish",
                           [{"field": "trial", "value": best.number}])
        self.session.commit()
        registry = RegistryService(self.session, self.settings)
        if alias is not None:
            registry.set_alias(principal, job.model_name, alias, version)
            self.session.commit()
        return {"study_id": study.id, "trial": best.number, "job_id": job.id,
                "model": job.model_name, "version": version, "alias": alias}

    def _publish(self, job: Job) -> int | None:
        """Register a succeeded trial's model from what its training kept; in the caller's
        transaction, which clears the record (never published twice)."""
        record = job.unpublished
        if record is None:
            return None
        version = RegistryService(self.session, self.settings).publish(
            job, record["manifest"], record["artifact_dir"], record["max_abs_diff"])
        JobRepository(self.session).set_model_version(job.id, version)
        self.studies.set_unpublished(job.id, None)
        return version

    # Driving.

    def advance_all(self) -> None:
        for study_id in self.studies.running_ids():
            try:
                self.advance(study_id)
            except Exception:  # one study's fault must not stall the others
                self.session.rollback()
                log.exception("study %s could not advance", study_id)

    def advance(self, study_id: str) -> None:
        """Start the trials the budget allows now, or end the study once nothing is left to
        run: called when a trial ends (by its worker) and by every reconciler's loop."""
        study = self.studies.get(study_id)
        if study is None or study.status != StudyStatus.running:
            return
        definition = self.definition(study)
        active = self.studies.active_trials(study.id)
        out_of_time = study.deadline is not None and self.clock() >= _aware(study.deadline)
        if not active and (study.trials_started >= definition.trials or out_of_time):
            self._conclude(study, definition)
            return
        owner = UserRepository(self.session).get(study.owner_id)
        if out_of_time or owner is None:
            return
        principal = Principal(owner.id, owner.name, owner.role)
        started = self._start(principal, study, definition, strict=False,
                              active=len(active))
        self.session.commit()
        self._send(started)

    def _start(self, principal: Principal, study: Study, definition: StudyDefinition,
               strict: bool, active: int = 0) -> list[Job]:
        """Add the rows of the trials to start now (uncommitted). With `strict` (at submit), a
        trial that is refused refuses the whole study, unless it is invalid in a space too large
        to have been checked; else it fails alone, with the reason."""
        count = min(definition.trials - study.trials_started,
                    definition.max_concurrent - active)
        quota = self.jobs.quota_left(principal)
        if quota is not None:
            count = min(count, quota)
        first = study.trials_started
        if count <= 0 or not self.studies.take_numbers(study.id, first, count):
            return []
        options, base = self._options(definition)
        sampled = self._ask(study, definition, first, count)
        jobs, invalid = [], list(study.invalid_trials)
        for number, drawn in zip(range(first, first + count), sampled, strict=True):
            point = definition.grid_point(number) if definition.grid_dimensions() else {}
            params = {path: {**point, **drawn}[path] for path in definition.space}
            try:
                jobs.append(self.jobs.prepare(
                    principal, self._body(base, params), options, study_id=study.id,
                    trial_number=number, trial_params=params,
                    publish=definition.publish == "all"))
            except CapasError as error:
                # A space too large to check at submit: an invalid trial fails alone.
                if strict and (study.enumerated or not isinstance(error, Invalid)):
                    raise
                invalid.append({"number": number, "params": params, "reason": error.message})
        study.invalid_trials = invalid
        return jobs

    def _send(self, jobs: list[Job]) -> None:
        for job in jobs:
            dispatch(self.settings, job.id, job.queue)

    def _conclude(self, study: Study, definition: StudyDefinition) -> None:
        """The study's end once its last trial has; with `publish: best`, its best trial's
        model is published in the same transaction."""
        if not self.studies.end(study.id, StudyStatus.finished, self.clock()):
            return
        if definition.publish == "best":
            best = self.best(study, self.trials(study))
            job = JobRepository(self.session).get(best.job_id) if best and best.job_id else None
            if job is not None and job.model_version is None:
                try:
                    self._publish(job)
                except Conflict as refused:  # its model's name is another member's now
                    log.warning("study %s: best trial not published: %s", study.id,
                                refused.message)
        self.session.commit()

    # Optuna.

    def _ask(self, study: Study, definition: StudyDefinition, first: int,
             count: int) -> list[dict[str, Any]]:
        """The sampled dimensions' values of the next `count` trials, from Optuna's sampler
        given every trial so far."""
        distributions = _distributions(definition)
        if not distributions:
            return [{} for _ in range(count)]
        seed = (definition.seed * 1_000_003 + first) % 2**31
        sampler: optuna.samplers.BaseSampler = (
            optuna.samplers.TPESampler(seed=seed, constant_liar=True)
            if definition.sampler == "tpe" else optuna.samplers.RandomSampler(seed=seed))
        optimizer = optuna.create_study(direction=definition.objective.direction,
                                        sampler=sampler)
        metric = definition.objective.metric
        values = self.studies.metric_values(study.id, metric)
        for job in self.studies.trials(study.id):
            params = {path: _internal(definition, path, value)
                      for path, value in (job.trial_params or {}).items()
                      if path in distributions}
            state, value = _state(job, metric, values.get(job.id, {}))
            optimizer.add_trial(optuna.trial.create_trial(
                state=state, value=value, params=params,
                distributions={path: distributions[path] for path in params},
                intermediate_values=values.get(job.id, {})))
        drawn = []
        for _ in range(count):
            trial = optimizer.ask(distributions)
            drawn.append({path: _external(definition, path, trial.params[path])
                          for path in distributions})
        return drawn

    def prunes(self, study_id: str) -> bool:
        study = self.studies.get(study_id)
        return study is not None and self.definition(study).pruning.type != "none"

    def prune_reason(self, job: Job, epoch: int) -> str | None:
        """Whether the trial should stop after `epoch` (its row is written), and why."""
        assert job.study_id is not None
        study = self.studies.get(job.study_id)
        if study is None:
            return None
        definition = self.definition(study)
        pruning = definition.pruning
        if pruning.type == "none":
            return None
        metric = definition.objective.metric
        values = self.studies.metric_values(study.id, metric)
        mine = {step: value for step, value in values.get(job.id, {}).items() if step <= epoch}
        if epoch not in mine:
            return None
        pruner: optuna.pruners.BasePruner = (
            optuna.pruners.MedianPruner(n_startup_trials=pruning.startup_trials,
                                        n_warmup_steps=pruning.warmup_epochs)
            if pruning.type == "median" else
            optuna.pruners.SuccessiveHalvingPruner(min_resource=pruning.min_epochs,
                                                   reduction_factor=pruning.reduction_factor))
        optimizer = optuna.create_study(direction=definition.objective.direction,
                                        pruner=pruner)
        for other in self.studies.trials(study.id):
            curve = values.get(other.id, {})
            state, value = _state(other, metric, curve)
            if other.id == job.id or state == TrialState.RUNNING:
                continue
            optimizer.add_trial(optuna.trial.create_trial(
                state=state, value=value, intermediate_values=curve,
                system_attrs=_rungs(pruning.min_epochs, pruning.reduction_factor, curve,
                                    before=None)))
        optimizer.add_trial(optuna.trial.create_trial(
            state=TrialState.RUNNING, intermediate_values=mine,
            system_attrs=_rungs(pruning.min_epochs, pruning.reduction_factor, mine,
                                before=epoch)))
        current: FrozenTrial = optimizer.trials[-1]
        if not pruner.prune(optimizer, current):
            return None
        value = mine[epoch]
        if pruning.type == "median":
            peers = [t.intermediate_values[epoch] for t in optimizer.trials
                     if t.state == TrialState.COMPLETE and epoch in t.intermediate_values]
            median = statistics.median(peers) if peers else float("nan")
            return (f"pruned at epoch {epoch} by the median pruner: {metric} {value:.4g} is "
                    f"worse than the median {median:.4g} of the completed trials at that epoch")
        return (f"pruned at epoch {epoch} by successive halving (asha): {metric} {value:.4g} "
                f"is not among the best 1/{pruning.reduction_factor} of the trials that "
                f"reached that epoch")


def advance_study(settings: Settings, study_id: str) -> None:
    """Start the study's next trials (a trial of it has just ended); never raises."""
    from core.db import session_scope

    try:
        with session_scope(settings) as session:
            StudyService(session, settings).advance(study_id)
    except Exception:
        log.exception("study %s could not advance; the reconciler will", study_id)


def _value(job: Job, metric: str, curve: dict[int, float]) -> float | None:
    """A trial's objective: the last epoch's value (of the model it trained), or, pruned,
    of the last epoch it trained."""
    if job.status == JobStatus.succeeded and job.final_metrics:
        value = job.final_metrics.get(metric)
        return float(value) if value is not None else None
    if job.pruned_reason is not None and curve:
        return curve[max(curve)]
    return None


def _state(job: Job, metric: str, curve: dict[int, float]) -> tuple[TrialState, float | None]:
    value = _value(job, metric, curve)
    if job.pruned_reason is not None:
        return TrialState.PRUNED, value
    if job.status == JobStatus.succeeded and value is not None:
        return TrialState.COMPLETE, value
    if job.status in FINISHED_STATUSES:
        return TrialState.FAIL, None
    return TrialState.RUNNING, None


def _rungs(min_epochs: int, reduction_factor: int, curve: dict[int, float],
           before: int | None) -> dict[str, Any]:
    """The rungs of successive halving a trial completed: the value it had at each rung's
    epoch (only those before `before`: the current epoch's is the pruner's to record)."""
    rungs: dict[str, Any] = {}
    rung = 0
    while True:
        step = min_epochs * reduction_factor ** rung
        if step not in curve or (before is not None and step >= before):
            return rungs
        rungs[RUNG_KEY.format(rung)] = curve[step]
        rung += 1


def _distributions(definition: StudyDefinition,
                   with_grid: bool = False) -> dict[str, BaseDistribution]:
    """Optuna's distribution of each sampled dimension (and of each grid one, `with_grid`); a
    list's value is drawn as its index (its values may be objects, which Optuna does not take)."""
    found: dict[str, BaseDistribution] = {}
    for path in definition.space if with_grid else definition.sampled_dimensions():
        dimension = definition.space[path]
        values = dimension.choice or dimension.grid
        if values is not None:
            found[path] = CategoricalDistribution(list(range(len(values))))
        elif dimension.integer is not None:
            low, high = dimension.corners()
            found[path] = IntDistribution(low, high, step=dimension.step or 1)
        else:
            low, high = dimension.corners()
            found[path] = FloatDistribution(low, high, log=dimension.loguniform is not None)
    return found


def _internal(definition: StudyDefinition, path: str, value: Any) -> Any:
    values = definition.space[path].choice or definition.space[path].grid
    return values.index(value) if values is not None else value


def _external(definition: StudyDefinition, path: str, value: Any) -> Any:
    choices = definition.space[path].choice
    return choices[value] if choices is not None else value


def _describe(params: dict[str, Any]) -> str:
    return ", ".join(f"{path}={json.dumps(value)}" for path, value in params.items())


def _aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
