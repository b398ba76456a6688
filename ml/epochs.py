"""What a training reports after each epoch: one row of the job's per-epoch metrics."""

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class EpochMetrics:
    epoch: int  # 1-based
    loss: float
    val_loss: float | None = None
    accuracy: float | None = None
    val_accuracy: float | None = None
    mae: float | None = None
    val_mae: float | None = None
    learning_rate: float | None = None
    duration_s: float | None = None
    samples_per_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
