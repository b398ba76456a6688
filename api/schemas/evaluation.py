"""The evaluation report `ml.evaluation` makes (DESIGN §11): of a job on its test split
(`GET /jobs/{id}/evaluation`), or of a version on a dataset (`POST .../evaluate`)."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.base import Name, RequestBody


class EvaluateIn(RequestBody):
    dataset: Name  # a built-in or an upload the caller may read, with the version's schema


class ClassMetrics(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    class_name: str = Field(alias="class")
    precision: float
    recall: float
    f1: float
    support: int  # test samples (or time steps) of this class


class Averages(BaseModel):
    precision: float
    recall: float
    f1: float


class RocCurve(BaseModel):
    auc: float
    fpr: list[float]
    tpr: list[float]


class PrCurve(BaseModel):
    auc: float
    precision: list[float]
    recall: list[float]


class Misclassified(BaseModel):
    index: int  # the sample's place in the dataset
    step: int | None = None  # the time step, for a class per step
    true: str
    predicted: str
    probabilities: list[float]  # in the order of `classes`
    features: Any = None  # the raw sample, when small enough to draw or list


class Residual(BaseModel):
    index: int
    predicted: float
    residual: float  # true − predicted


class Evaluation(BaseModel):
    """Classification answers the fields up to `misclassified`; regression, `mae` to
    `residuals`."""

    task: Literal["classification", "regression"]
    # The test split of the data the model was trained on; "all": every sample of another.
    split: Literal["test", "all"]
    dataset: str | None = None  # of a version evaluated on a dataset: which, and the version
    model: str | None = None
    version: int | None = None
    samples: int
    per_time_step: bool | None = None
    steps: int | None = None
    note: str | None = None
    classes: list[str] | None = None
    accuracy: float | None = None
    confusion_matrix: list[list[int]] | None = None  # rows true, columns predicted
    per_class: list[ClassMetrics] | None = None
    macro: Averages | None = None
    weighted: Averages | None = None
    roc: RocCurve | None = None  # binary tasks
    pr: PrCurve | None = None
    misclassified_total: int | None = None
    misclassified: list[Misclassified] | None = None
    outputs_per_sample: int | None = None
    mae: float | None = None
    rmse: float | None = None
    r2: float | None = None
    residuals: list[Residual] | None = None
