"""The local artifact store: every path is made here from server-side ids, never from input."""

from pathlib import Path

from core.settings import Settings


class ArtifactStore:
    def __init__(self, settings: Settings):
        self.root = settings.artifacts_dir

    def job_model_dir(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id / "model"

    def job_checkpoint_dir(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id / "checkpoint"

    def resolve(self, stored: str) -> Path:
        """A directory recorded in the registry, relative to the store root."""
        path = (self.root / stored).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"artifact path outside the store: {stored}")
        return path

    def relative(self, path: Path) -> str:
        return str(path.resolve().relative_to(self.root.resolve()))
