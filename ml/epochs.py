"""What a training reports after each epoch: the one definition of the per-epoch metric fields.

The job's metric rows (the table, `GET /jobs/{id}/metrics`, its CSV, the CLI and the dashboard)
take their fields, in this order, from `EpochMetrics`.
"""

from dataclasses import asdict, dataclass, field, fields
from typing import Any


def _metric(description: str, bookkeeping: bool = False) -> Any:
    return field(default=None, metadata={"description": description,
                                         "bookkeeping": bookkeeping})


@dataclass
class EpochMetrics:
    epoch: int  # 1-based
    loss: float = field(metadata={"description": "the objective on the training split, "
                                                 "averaged over the epoch's batches",
                                  "bookkeeping": False})
    val_loss: float | None = _metric("the objective on the validation split")
    accuracy: float | None = _metric("share of training samples classified right (of time "
                                     "steps, for a class per step)")
    val_accuracy: float | None = _metric("share of validation samples classified right (of "
                                         "time steps, for a class per step)")
    mae: float | None = _metric("mean absolute error on the training split (regression)")
    val_mae: float | None = _metric("mean absolute error on the validation split (regression)")
    learning_rate: float | None = _metric("the rate this epoch trained at", bookkeeping=True)
    duration_s: float | None = _metric("seconds the epoch took", bookkeeping=True)
    samples_per_s: float | None = _metric("training samples per second", bookkeeping=True)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# Every field of a metric row but its epoch number, in order.
METRIC_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(EpochMetrics) if f.name != "epoch")


def metric_catalog() -> list[dict[str, Any]]:
    """The fields as `GET /catalog` lists them; bookkeeping ones describe the run, not the model."""
    return [{"name": f.name, **f.metadata} for f in fields(EpochMetrics) if f.name != "epoch"]
