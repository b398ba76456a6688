"""A study's definition (the base job, a search space over paths of it, an objective, a budget) and
what a trial is: the base job with the space's values put at their paths.

Declared once for `POST /studies`, the service and the Python client; it imports pydantic, the
per-epoch metric fields and the domain's errors alone.
"""

import copy
import itertools
import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from core.errors import Invalid
from ml.epochs import metric_catalog

# What a trial can be judged by: the model's metrics of an epoch, not the run's bookkeeping.
OBJECTIVE_METRICS: tuple[str, ...] = tuple(
    entry["name"] for entry in metric_catalog() if not entry["bookkeeping"])
# The values of a job body a space may set: its blocks and the values inside them.
SPACE_ROOTS = ("model", "training", "dataset", "framework", "device")
PATH_PATTERN = re.compile(r"[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*|\[\d{1,3}\])*")
PATH_PART = re.compile(r"([a-z_][a-z0-9_]*)|\[(\d+)\]")
MAX_DIMENSIONS = 16
MAX_VALUES = 100  # of one grid or choice
MAX_GRID_POINTS = 10_000
MAX_TRIALS = 1000
# A space with at most this many combinations of its values (each range counted by its two
# ends) has every combination validated at submit; a larger one has each trial validated as it
# is created, and a trial that is invalid fails alone with the reason.
MAX_ENUMERATED = 512

Number = StrictInt | StrictFloat
Bounds = Annotated[list[Number], Field(min_length=2, max_length=2)]
IntBounds = Annotated[list[StrictInt], Field(min_length=2, max_length=2)]
Path = list[str | int]


class Dimension(BaseModel):
    """One value of the space: exactly one of `grid`, `choice`, `uniform`, `loguniform`, `int`."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=False)

    grid: Annotated[list[Any] | None, Field(
        min_length=1, max_length=MAX_VALUES,
        description="every value in turn: the trials go through the grid's points")] = None
    choice: Annotated[list[Any] | None, Field(
        min_length=1, max_length=MAX_VALUES,
        description="values the sampler picks from")] = None
    uniform: Annotated[Bounds | None, Field(
        description="[low, high]: a number drawn evenly between them")] = None
    loguniform: Annotated[Bounds | None, Field(
        description="[low, high], both positive: a number drawn evenly on a log scale")] = None
    integer: Annotated[IntBounds | None, Field(
        alias="int", description="[low, high]: an integer between them, ends included")] = None
    step: Annotated[StrictInt | None, Field(
        gt=0, description="with int: the integers low, low + step, … up to high")] = None

    @model_validator(mode="after")
    def _one_kind(self) -> "Dimension":
        kinds = [kind for kind in ("grid", "choice", "uniform", "loguniform", "integer")
                 if getattr(self, kind) is not None]
        if len(kinds) != 1:
            raise ValueError("expected exactly one of grid, choice, uniform, loguniform, int")
        if self.step is not None and self.integer is None:
            raise ValueError("step goes with int only")
        bounds = self.uniform or self.loguniform or self.integer
        if bounds is not None:
            low, high = bounds
            if not all(math.isfinite(v) for v in bounds) or low >= high:
                raise ValueError(f"expected [low, high] with low < high, received {list(bounds)}")
            if self.loguniform is not None and low <= 0:
                raise ValueError(f"loguniform needs low > 0, received {low}")
        return self

    @property
    def kind(self) -> str:
        return next(kind for kind in ("grid", "choice", "uniform", "loguniform", "int")
                    if getattr(self, "integer" if kind == "int" else kind) is not None)

    def corners(self) -> list[Any]:
        """The values that stand for this dimension when the space is checked at submit: every
        listed value, or a range's two ends (the highest integer its step reaches)."""
        if self.grid is not None or self.choice is not None:
            return list(self.grid or self.choice or [])
        if self.integer is not None:
            low, high = self.integer
            step = self.step or 1
            return [low, low + (high - low) // step * step]
        bounds = self.uniform or self.loguniform
        assert bounds is not None  # one kind is set (_one_kind)
        return list(bounds)


class Objective(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    metric: str = Field(description="a per-epoch metric: " + ", ".join(OBJECTIVE_METRICS))
    direction: Literal["maximize", "minimize"] = Field(
        description="whether a higher or a lower value is better")

    @field_validator("metric")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in OBJECTIVE_METRICS:
            raise ValueError(f"expected one of {', '.join(OBJECTIVE_METRICS)}")
        return value


class Pruner(BaseModel):
    """Stops a trial whose per-epoch objective lags the others'."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["none", "median", "asha"] = Field(
        "none", description="median: below the median of completed trials at the same epoch; "
                            "asha: asynchronous successive halving")
    startup_trials: Annotated[StrictInt, Field(ge=0, le=MAX_TRIALS)] = Field(
        2, description="median: trials that complete before any is pruned")
    warmup_epochs: Annotated[StrictInt, Field(ge=0, le=10_000)] = Field(
        0, description="median: epochs of each trial that are never pruned")
    min_epochs: Annotated[StrictInt, Field(ge=1, le=10_000)] = Field(
        1, description="asha: the epochs of the first rung")
    reduction_factor: Annotated[StrictInt, Field(ge=2, le=100)] = Field(
        3, description="asha: one trial in this many goes on to the next rung")


class StudyDefinition(BaseModel):
    """`POST /studies`: what to train (base), what to vary (space), how to judge (objective),
    and how much to spend (max_trials, max_concurrent, max_wall_time_s)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,99}$")] = Field(
        description="what the study is called")
    base: dict[str, Any] = Field(description="a job body, as `POST /jobs` takes it "
                                             "(`max_runtime_s` and `max_attempts` included)")
    space: Annotated[dict[str, Dimension], Field(min_length=1, max_length=MAX_DIMENSIONS)] = \
        Field(description="the values to vary, by their path in the job body "
                          "(`training.optimizer.learning_rate`, `model.layers[1].units`, "
                          "`framework`)")
    objective: Objective
    sampler: Literal["grid", "random", "tpe"] = Field(
        "random", description="how the sampled dimensions are drawn (grid dimensions are "
                              "always gone through in turn; with `grid`, the rest at random)")
    pruner: Literal["none", "median", "asha"] | Pruner = "none"
    max_trials: Annotated[StrictInt | None, Field(ge=1, le=MAX_TRIALS)] = Field(
        None, description="how many trials in all (default: the grid's size, when every "
                          "dimension is a grid)")
    max_concurrent: Annotated[StrictInt, Field(ge=1, le=100)] = Field(
        2, description="how many trials queued or running at once")
    max_wall_time_s: Annotated[StrictInt | None, Field(ge=1, le=30 * 24 * 3600)] = Field(
        None, description="no trial starts once this many seconds have passed since submit")
    publish: Literal["best", "all", "none"] = Field(
        "best", description="which trials publish a model version: the best once the study "
                            "ends, every one that succeeds, or none")
    seed: Annotated[StrictInt, Field(ge=0, lt=2**31)] = Field(
        0, description="seeds the sampler")

    @field_validator("space")
    @classmethod
    def _paths(cls, space: dict[str, Dimension]) -> dict[str, Dimension]:
        for path in space:
            if not PATH_PATTERN.fullmatch(path) or parse_path(path)[0] not in SPACE_ROOTS:
                raise ValueError(f"'{path}' is not a path of a job body: expected a dotted path "
                                 f"from {', '.join(SPACE_ROOTS)}, with [i] for list items, "
                                 "e.g. training.optimizer.learning_rate, model.layers[1].units")
        return space

    @model_validator(mode="after")
    def _grid_bound(self) -> "StudyDefinition":
        if self.grid_size() > MAX_GRID_POINTS:
            raise ValueError(f"the grid has {self.grid_size()} points, more than "
                             f"{MAX_GRID_POINTS}")
        return self

    @property
    def pruning(self) -> Pruner:
        return self.pruner if isinstance(self.pruner, Pruner) else Pruner(type=self.pruner)

    @property
    def trials(self) -> int:
        assert self.max_trials is not None  # set by parse_study
        return self.max_trials

    def grid_dimensions(self) -> list[str]:
        return [path for path, dimension in self.space.items() if dimension.grid is not None]

    def sampled_dimensions(self) -> list[str]:
        return [path for path, dimension in self.space.items() if dimension.grid is None]

    def grid_size(self) -> int:
        return math.prod(len(self.space[path].grid or []) for path in self.grid_dimensions())

    def grid_point(self, number: int) -> dict[str, Any]:
        """The grid values of trial `number` (0-based): the grid's points in turn, again
        from the first once all have run."""
        paths = self.grid_dimensions()
        index, point = number % self.grid_size(), {}
        for path in reversed(paths):  # the last dimension varies fastest
            values = self.space[path].grid or []
            index, position = divmod(index, len(values))
            point[path] = values[position]
        return {path: point[path] for path in paths}

    def corner_combinations(self) -> list[dict[str, Any]] | None:
        """Every combination of the dimensions' corners, or None if there are more than
        `MAX_ENUMERATED`."""
        corners = {path: dimension.corners() for path, dimension in self.space.items()}
        if math.prod(len(values) for values in corners.values()) > MAX_ENUMERATED:
            return None
        return [dict(zip(corners, values, strict=True))
                for values in itertools.product(*corners.values())]


def parse_study(body: Any) -> StudyDefinition:
    """The definition, or `Invalid` naming each bad field and echoing its value."""
    try:
        definition = StudyDefinition.model_validate(body)
    except ValidationError as error:
        details = [{"field": ".".join(str(part) for part in e["loc"]) or "space",
                    "message": e["msg"].removeprefix("Value error, "),
                    "value": e.get("input")} for e in error.errors()]
        raise Invalid("the study is invalid: " + "; ".join(
            f"{d['field']}: {d['message']}" for d in details[:5]), details) from None
    if definition.max_trials is None:
        if definition.sampled_dimensions():
            raise Invalid("max_trials: required when the space has dimensions that are sampled "
                          f"({', '.join(definition.sampled_dimensions())})",
                          [{"field": "max_trials", "value": None}])
        definition.max_trials = min(definition.grid_size(), MAX_TRIALS)
    return definition


def parse_path(path: str) -> Path:
    """`model.layers[1].units` → `['model', 'layers', 1, 'units']`."""
    return [name if name else int(index) for name, index in PATH_PART.findall(path)]


class PathError(ValueError):
    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path


def apply_params(base: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The base job with each value put at its path; the shorter paths first, so that
    `training.optimizer` is replaced before `training.optimizer.learning_rate` is set in it.
    A block the base leaves out is added (`training`); a list item must exist."""
    body = copy.deepcopy(base)
    for path in sorted(params, key=lambda p: len(parse_path(p))):
        parts = parse_path(path)
        node_any: Any = body
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            where = _format(parts[:depth]) or "the job body"
            if isinstance(part, int):
                if not isinstance(node_any, list) or part >= len(node_any):
                    size = (f"a list of {len(node_any)}" if isinstance(node_any, list)
                            else "no list")
                    raise PathError(path, f"{where} is {size}, with no item {part}")
            elif not isinstance(node_any, dict):
                raise PathError(path, f"{where} is not an object")
            elif not last and part not in node_any:
                node_any[part] = {}
            if last:
                node_any[part] = copy.deepcopy(params[path])
            else:
                node_any = node_any[part]
    return body


def _format(parts: Path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p)
                   for i, p in enumerate(parts))
