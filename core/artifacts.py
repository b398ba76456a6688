"""The local artifact store: every path is made here from server-side ids, never from input."""

import re
from pathlib import Path

from core.settings import Settings


class ArtifactStore:
    def __init__(self, settings: Settings):
        self.root = settings.artifacts_dir

    def job_model_dir(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id / "model"

    def job_checkpoint_dir(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id / "checkpoint"

    def dataset_file(self, sha256: str) -> Path:
        """The canonical form of a dataset: one file per content hash, shared by every row."""
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.root / "datasets" / f"{sha256}.npz"

    def resolve(self, stored: str) -> Path:
        """A directory recorded in the registry, relative to the store root."""
        path = (self.root / stored).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"artifact path outside the store: {stored}")
        return path

    def relative(self, path: Path) -> str:
        return str(path.resolve().relative_to(self.root.resolve()))
