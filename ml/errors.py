"""Errors raised by ml that name the JSON path and echo the bad value; never retried."""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SpecIssue:
    path: str
    message: str
    value: Any = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SpecError(ValueError):
    """The model definition cannot work; lists every problem at once."""

    def __init__(self, issues: list[SpecIssue]):
        self.issues = issues
        super().__init__("; ".join(str(issue) for issue in issues))


class DataError(ValueError):
    """The dataset cannot be used for this job (or at all)."""
