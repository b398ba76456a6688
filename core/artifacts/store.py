"""The store interface, the local store, and the names every store gives what it holds."""

import logging
import os
import re
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from core.errors import Unavailable
from core.settings import Settings
from ml.artifacts import ArtifactIntegrityError, verify

log = logging.getLogger(__name__)

# One part of a name: what ids, hashes and file names are made of; never '.', '..' or hidden.
NAME_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

# Writes a checkpoint's state through the callable it is given (ml.training.Checkpoints.write):
# (epoch, state file name, write the state to this path).
AdoptCheckpoint = Callable[[int, str, Callable[[Path], None]], None]


class StoreUnavailable(Unavailable):
    """The store cannot be reached or used as configured: 503, and a refusal to start."""


def name_of(*parts: str) -> str:
    """A name in the store, from parts that each must look like an id or a file name."""
    for part in parts:
        if not NAME_PART.fullmatch(part):
            raise ValueError(f"not an artifact name: {'/'.join(parts)!r}")
    return "/".join(parts)


def model_name(job_id: str) -> str:
    return name_of("jobs", job_id, "model")


def checkpoint_name(job_id: str) -> str:
    return name_of("jobs", job_id, "checkpoint")


def dataset_name(sha256: str) -> str:
    """The canonical form of a dataset: one file per content hash, shared by every row."""
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError(f"not a sha256: {sha256!r}")
    return name_of("datasets", f"{sha256}.npz")


def model_file_name(stored: str, filename: str) -> str:
    """A file of a published model: `stored` is the name its registry row records."""
    return name_of(*stored.split("/"), filename)


def checked(path: Path, card: Mapping[str, Any], filename: str) -> Path:
    """`path`, if it is the file the card lists with its sha256; else the error names it."""
    if not path.is_file():
        raise ArtifactIntegrityError(f"{filename} is missing from the artifact store")
    return verify(path.parent, card, filename)


class ArtifactStore(ABC):
    def __init__(self, root: Path, work: Path):
        self.root, self.work = root, work

    def job_model_dir(self, job_id: str) -> Path:
        """Where a worker writes the model it trained, before `store_model`."""
        return self.work / model_name(job_id)

    def job_checkpoint_dir(self, job_id: str) -> Path:
        """Where a job's checkpoint is written and resumed from on this host."""
        return self.work / checkpoint_name(job_id)

    @abstractmethod
    def describe(self) -> str:
        """Where the store is, for messages."""

    @abstractmethod
    def check(self) -> None:
        """Raise `StoreUnavailable` naming what is wrong, unless the store can be used."""

    def reachable(self) -> bool:
        try:
            self.check()
        except StoreUnavailable as error:
            log.warning("%s", error.message)
            return False
        return True

    @abstractmethod
    def store_model(self, job_id: str) -> str:
        """Store every file of the job's model dir; returns the name the registry records."""

    @abstractmethod
    def model_file(self, stored: str, card: Mapping[str, Any], filename: str) -> Path:
        """A local copy of a published model's file, checked against the card's sha256;
        `ArtifactIntegrityError` names a file that is missing or does not match."""

    @abstractmethod
    def save_checkpoint(self, job_id: str, epoch: int, state: Path) -> None:
        """Store the state file just written (after `epoch`) into the job's checkpoint dir."""

    @abstractmethod
    def restore_checkpoint(self, job_id: str, adopt: AdoptCheckpoint) -> None:
        """Before a job starts on this host: make its checkpoint dir hold the stored one."""

    @abstractmethod
    def drop_checkpoint(self, job_id: str) -> None:
        """The job is over: its checkpoint goes, here and in the store."""

    @abstractmethod
    def store_dataset(self, sha256: str, write: Callable[[Path], None]) -> None:
        """Store a dataset's canonical file, written by `write`, unless already stored."""

    @abstractmethod
    def dataset_path(self, sha256: str) -> Path | None:
        """A local copy of a stored dataset file (None if the store has none). Its content
        is checked against the dataset's sha256 by whoever loads it (`load_canonical`)."""

    @abstractmethod
    def delete_dataset(self, sha256: str) -> None:
        """Remove a dataset file that no row uses any more."""


class LocalStore(ArtifactStore):
    """The data dir's `artifacts/` folder is the store: files are read where they were written,
    and the hosts of a cluster must share it (a volume)."""

    def __init__(self, settings: Settings):
        super().__init__(settings.artifacts_dir, settings.artifacts_dir)

    def describe(self) -> str:
        return f"the directory {self.root}"

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreUnavailable(f"artifact store: cannot make {self.root}: "
                                   f"{error.strerror}") from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StoreUnavailable(f"artifact store: cannot write to {self.root}")

    def store_model(self, job_id: str) -> str:
        return model_name(job_id)

    def model_file(self, stored: str, card: Mapping[str, Any], filename: str) -> Path:
        return checked(self.root / model_file_name(stored, filename), card, filename)

    def save_checkpoint(self, job_id: str, epoch: int, state: Path) -> None:
        pass  # written in the store already

    def restore_checkpoint(self, job_id: str, adopt: AdoptCheckpoint) -> None:
        pass  # the job's checkpoint dir is the stored one

    def drop_checkpoint(self, job_id: str) -> None:
        shutil.rmtree(self.job_checkpoint_dir(job_id), ignore_errors=True)

    def store_dataset(self, sha256: str, write: Callable[[Path], None]) -> None:
        path = self.root / dataset_name(sha256)
        if not path.is_file():
            write(path)

    def dataset_path(self, sha256: str) -> Path | None:
        path = self.root / dataset_name(sha256)
        return path if path.is_file() else None

    def delete_dataset(self, sha256: str) -> None:
        (self.root / dataset_name(sha256)).unlink(missing_ok=True)
