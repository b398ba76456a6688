"""Bodies of the dataset routes."""

from typing import Any

from pydantic import (
    BaseModel,
    StrictBool,
)

from api.schemas.base import RequestBody, Timestamp


class DatasetPatch(RequestBody):
    public: StrictBool  # open the dataset to every member (to inspect and train on), or close it


class DatasetOut(BaseModel):
    """A dataset's schema; `preview` (the first samples) only when one dataset is read."""

    id: str
    name: str
    source: str  # "builtin" or "upload"
    format: str | None
    owner_id: int | None
    public: bool  # built-ins always; an upload when its owner opened it to every member
    created_at: Timestamp
    description: str
    task: str
    kind: str
    feature_shape: list[int]
    feature_names: list[str] | None
    dtype: str
    num_samples: int
    num_classes: int | None
    class_names: list[str] | None
    class_counts: list[int] | None  # of samples, or of time steps for a class per step
    target_shape: list[int] | None  # regression's; [steps] for a class per step
    target_name: str | None
    # The last this many samples are the test split the data came with (IDX, CIFAR files)
    test_samples: int | None = None
    sha256: str
    preview: list[dict[str, Any]] | None = None
