"""The one settings object (``CAPAS_`` environment variables) shared by API, workers and Alembic."""

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# s3://bucket[/prefix], with a bucket name as S3 allows it.
ARTIFACT_URL = re.compile(r"s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<prefix>.*))?")


def _default_threads() -> int:
    # A small model on two cores trains faster on one thread than on two that fight
    # (and the API shares the host); give the framework half the cores.
    return max(1, (os.cpu_count() or 1) // 2)


class Settings(BaseSettings):
    # The AWS settings are read under their standard names; code may pass them by field name.
    model_config = SettingsConfigDict(env_prefix="CAPAS_", env_file=".env", extra="ignore",
                                      populate_by_name=True)

    data_dir: Path = Path("capas-data")
    database_url: str | None = None
    broker_url: str | None = None
    # Where artifacts persist. Unset: in the data dir (the embedded default; in cluster mode, a
    # volume every host mounts). `s3://bucket/prefix`: in an S3-compatible object store, which
    # hosts share instead; each keeps what it reads in a cache of `artifact_cache_mb` in its
    # own data dir. Credentials and region are the standard AWS variables (unset: boto3 looks
    # them up as usual, in ~/.aws or the instance's role).
    artifact_url: str | None = None
    s3_endpoint_url: str | None = None
    aws_access_key_id: str | None = Field(default=None, validation_alias="AWS_ACCESS_KEY_ID")
    aws_secret_access_key: SecretStr | None = Field(default=None,
                                                    validation_alias="AWS_SECRET_ACCESS_KEY")
    aws_default_region: str | None = Field(default=None, validation_alias="AWS_DEFAULT_REGION")
    artifact_cache_mb: int = Field(default=2048, ge=1)

    host: str = "127.0.0.1"
    port: int = 8000

    torch_threads: int = Field(default_factory=_default_threads)
    worker_max_memory_mb: int = 2048
    worker_concurrency: int = 1
    # Imported by each worker process as it starts, before it takes a job: the first job of a
    # process (after `capas up`, and after each restart past `worker_max_memory_mb`) would
    # otherwise pay for the import, some 4 s.
    worker_preload: list[Literal["pytorch", "tensorflow"]] = ["pytorch", "tensorflow"]
    broker_poll_interval_s: float = 0.05

    # Jobs that are never lost (DESIGN §6): a running job polls its stop flag and beats every
    # `job_poll_interval_s`; one silent for `heartbeat_stale_s` is re-queued. The reconciler
    # runs in every worker every `reconcile_interval_s` and re-sends queued jobs whose message
    # the broker no longer holds, `resend_grace_s` after they were sent.
    job_poll_interval_s: float = 0.25
    heartbeat_stale_s: float = 60.0
    reconcile_interval_s: float = 5.0
    resend_grace_s: float = 10.0
    worker_alive_s: float = 30.0
    max_attempts: int = 3
    # A checkpoint after every epoch, but not more often than this: epochs of a few
    # milliseconds would spend longer writing checkpoints than training.
    checkpoint_min_interval_s: float = 1.0
    # Queued and running jobs one member may have at once (admins are not limited).
    max_concurrent_jobs: int = 20

    max_epochs: int = 1000
    max_params: int = 10_000_000
    max_runtime_s: int = 6 * 3600
    max_predict_batch: int = 1024
    max_body_mb: int = 32
    # The longest wait for the next piece of a request body: a client that stops sending one
    # is answered 408 and its connection closed, instead of holding it open for ever.
    body_timeout_s: float = Field(default=30.0, gt=0)
    # Layers in one model: refused before the spec is parsed, whose cost grows with them.
    max_layers: int = Field(default=256, ge=1)
    # Dataset uploads: the file itself, what an archive may expand to, and the parsed arrays.
    max_upload_mb: int = 512
    max_archive_mb: int = 1024
    max_archive_members: int = 100_000
    max_image_pixels: int = 25_000_000
    max_dataset_mb: int = 2048
    max_multipart_fields: int = 16
    max_multipart_files: int = 1
    model_cache_size: int = 16
    parity_tolerance: float = 1e-4
    # Adaptive batching defaults, per model overridable: concurrent requests for one version
    # are merged into one ONNX Runtime call of at most this many instances, waiting at most
    # this long for the batch to fill (never when only one request waits).
    batch_max_size: int = Field(default=64, ge=1)
    batch_max_delay_ms: float = Field(default=2.0, ge=0)
    # A prediction call that its model has shown to take at most this long runs on the event
    # loop instead of a thread: the hop costs more than such a call (0 sends every call to a
    # thread).
    inline_inference_ms: float = Field(default=0.1, ge=0)
    # How long an API process reuses an API key's user and the version a predict request
    # resolves to before asking SQL again: a revoked key, a moved alias or a model made private
    # reaches other API processes within this time (the process that changed it sees it at once).
    lookup_cache_s: float = Field(default=1.0, ge=0)

    @field_validator("artifact_url")
    @classmethod
    def _artifact_url(cls, value: str | None) -> str | None:
        if not value:
            return None  # CAPAS_ARTIFACT_URL= set empty: the data dir, as when unset
        if not ARTIFACT_URL.fullmatch(value):
            raise ValueError(f"artifact_url: expected s3://bucket/prefix (a bucket of 3 to 63 "
                             f"lowercase letters, digits, '.' or '-'), received {value!r}")
        return value

    @property
    def artifact_bucket(self) -> tuple[str, str] | None:
        """The object store's bucket and key prefix (ending in '/' unless empty), if any."""
        found = ARTIFACT_URL.fullmatch(self.artifact_url or "")
        if found is None:
            return None
        prefix = (found["prefix"] or "").strip("/")
        return found["bucket"], f"{prefix}/" if prefix else ""

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.resolved_data_dir / 'capas.db'}"

    @property
    def celery_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def is_embedded_broker(self) -> bool:
        return self.celery_broker_url.startswith("filesystem://")

    @property
    def artifacts_dir(self) -> Path:
        return self.resolved_data_dir / "artifacts"

    @property
    def artifact_cache_dir(self) -> Path:
        """The object store's files this host read or wrote, at most `artifact_cache_mb`."""
        return self.resolved_data_dir / "cache" / "artifacts"

    @property
    def artifact_work_dir(self) -> Path:
        """This host's files on their way to the object store (a job's model and checkpoint,
        a dataset being stored, a download in flight)."""
        return self.resolved_data_dir / "work"

    @property
    def broker_dir(self) -> Path:
        return self.resolved_data_dir / "broker"

    @property
    def upload_temp_dir(self) -> Path:
        return self.resolved_data_dir / "tmp" / "uploads"

    @property
    def credentials_file(self) -> Path:
        return self.resolved_data_dir / "credentials.json"

    def ensure_dirs(self) -> None:
        for path in (self.resolved_data_dir, self.artifacts_dir, self.upload_temp_dir,
                     self.broker_dir / "queue",
                     self.broker_dir / "processed", self.broker_dir / "control"):
            path.mkdir(parents=True, exist_ok=True)


@lru_cache
def get_settings() -> Settings:
    return Settings()
