"""The artifact store on S3-compatible object storage (boto3), with a bounded cache per host.

A host writes files in its working directory and uploads them (boto3's managed transfer:
in parts past `PART_BYTES`); what it reads is downloaded into its cache, checked against the
sha256 the model card, checkpoint or dataset row records, and the least recently used files
leave the cache past `artifact_cache_mb`. Nothing else is shared between hosts.
"""

import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from boto3.exceptions import S3TransferFailedError, S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from core.artifacts.store import (
    AdoptCheckpoint,
    ArtifactStore,
    StoreUnavailable,
    checkpoint_name,
    dataset_name,
    model_file_name,
    model_name,
)
from core.settings import Settings
from ml.artifacts import ArtifactIntegrityError, sha256_of

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

log = logging.getLogger(__name__)

MB = 1024 * 1024
MISSING = {"404", "NoSuchKey", "NotFound"}
REFUSED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}


@lru_cache(maxsize=8)
def s3_client(endpoint: str | None, key_id: str | None, secret: str | None,
              region: str | None) -> "S3Client":
    """One client per configuration and process: boto3's clients are thread-safe, and making
    one costs more than a request."""
    session = boto3.session.Session(aws_access_key_id=key_id, aws_secret_access_key=secret,
                                    region_name=region)
    # A store that does not answer is reported within seconds, not after minutes of retries;
    # a self-hosted endpoint (MinIO, SeaweedFS) names its buckets in the path, not the host.
    config = Config(connect_timeout=5, read_timeout=60,
                    retries={"max_attempts": 3, "mode": "standard"},
                    s3={"addressing_style": "path"} if endpoint else None)
    return session.client("s3", endpoint_url=endpoint, config=config)


class LruFiles:
    """The files under `root`, kept to at most `limit_bytes`: each use marks a file recent
    (its modification time), and adding files removes the least recently used others until
    the total fits.

    Hand-written because what reads these files (FileResponse, ONNX Runtime, numpy) wants a
    path, and every process of the host (API, workers) shares the directory: the file's own
    time is the record they share.
    """

    def __init__(self, root: Path, limit_bytes: int,
                 clock: Callable[[], int] = time.time_ns):
        self.root, self.limit_bytes, self.clock = root, limit_bytes, clock

    def touch(self, *paths: Path) -> None:
        now = self.clock()
        for path in paths:
            os.utime(path, ns=(now, now))

    def add(self, *paths: Path) -> None:
        """Files just placed in the cache: the newest, and never evicted by their own add."""
        self.touch(*paths)
        keep = {path.resolve() for path in paths}
        entries = []
        for directory, _, names in os.walk(self.root):
            for name in names:
                path = Path(directory, name)
                try:
                    stat = path.stat()
                except FileNotFoundError:  # evicted meanwhile by another process
                    continue
                entries.append((stat.st_mtime_ns, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries, key=lambda entry: entry[0]):
            if total <= self.limit_bytes:
                break
            if path.resolve() in keep:
                continue
            path.unlink(missing_ok=True)
            total -= size
            self._remove_empty_folders(path.parent)

    def _remove_empty_folders(self, folder: Path) -> None:
        """A model's folders go with its last file."""
        root = self.root.resolve()
        while folder.resolve() != root:
            try:
                folder.rmdir()
            except OSError:  # not empty, or already gone
                return
            folder = folder.parent


class S3Store(ArtifactStore):
    # Files past this size are uploaded and downloaded in parts of this size.
    PART_BYTES = 8 * MB

    def __init__(self, settings: Settings):
        super().__init__(settings.artifact_cache_dir, settings.artifact_work_dir)
        location = settings.artifact_bucket
        assert location is not None, "S3Store needs CAPAS_ARTIFACT_URL=s3://bucket/prefix"
        self.bucket, self.prefix = location
        secret = settings.aws_secret_access_key
        self.client = s3_client(settings.s3_endpoint_url, settings.aws_access_key_id,
                                secret.get_secret_value() if secret is not None else None,
                                settings.aws_default_region)
        self.cache = LruFiles(self.root, settings.artifact_cache_mb * MB)
        self.transfer = TransferConfig(multipart_threshold=self.PART_BYTES,
                                       multipart_chunksize=self.PART_BYTES)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def describe(self) -> str:
        return f"{self.url} at {self.client.meta.endpoint_url}"

    def key(self, name: str) -> str:
        return self.prefix + name

    # --- what a server checks as it starts, and /readyz ---------------------------------------

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as error:
            if _code(error) in MISSING | {"NoSuchBucket"}:
                raise self._unavailable(f"bucket '{self.bucket}' does not exist") from None
            raise self._failure(error) from None
        except (BotoCoreError, S3TransferFailedError) as error:
            raise self._failure(error) from None

    def _unavailable(self, reason: str) -> StoreUnavailable:
        return StoreUnavailable(f"artifact store {self.describe()}: {reason}",
                                [{"field": "artifact_url", "value": self.url}])

    def _failure(self, error: Exception) -> StoreUnavailable:
        if isinstance(error, ClientError):
            code = _code(error)
            if code in REFUSED:
                return self._unavailable(f"access denied ({code}): check AWS_ACCESS_KEY_ID and "
                                         "AWS_SECRET_ACCESS_KEY")
            if code == "NoSuchBucket":
                return self._unavailable(f"bucket '{self.bucket}' does not exist")
            return self._unavailable(f"{code}: {error.response.get('Error', {}).get('Message')}")
        if isinstance(error, NoCredentialsError):
            return self._unavailable("no credentials: set AWS_ACCESS_KEY_ID and "
                                     "AWS_SECRET_ACCESS_KEY")
        return self._unavailable(f"cannot reach {self.client.meta.endpoint_url} ({error})")

    @contextmanager
    def _calling(self) -> Iterator[None]:
        """The store's errors as 503s naming it (a worker re-queues its job on one)."""
        try:
            yield
        except S3UploadFailedError as error:  # boto3 wraps what the upload met
            cause = error.__context__
            raise self._failure(cause if isinstance(cause, Exception) else error) from None
        except (BotoCoreError, ClientError, S3TransferFailedError) as error:
            raise self._failure(error) from None

    # --- objects -------------------------------------------------------------------------------

    def _put(self, path: Path, name: str, metadata: Mapping[str, str] | None = None) -> None:
        with self._calling():
            self.client.upload_file(str(path), self.bucket, self.key(name), Config=self.transfer,
                                    ExtraArgs={"Metadata": dict(metadata)} if metadata else None)

    def _get(self, name: str, target: Path) -> bool:
        """Download `name` to `target`; False if the store has no such object."""
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._calling():
                try:
                    self.client.download_file(self.bucket, self.key(name), str(target),
                                              Config=self.transfer)
                except ClientError as error:
                    if _code(error) in MISSING:
                        return False
                    raise
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return True

    def _exists(self, name: str) -> bool:
        with self._calling():
            try:
                self.client.head_object(Bucket=self.bucket, Key=self.key(name))
            except ClientError as error:
                if _code(error) in MISSING:
                    return False
                raise
        return True

    def _partial(self) -> Path:
        """A file of its own in the working directory: two requests may fetch one name."""
        directory = self.work / "partial"
        directory.mkdir(parents=True, exist_ok=True)
        return directory / f"{uuid.uuid4().hex}.partial"

    def _cached(self, name: str, sha256: str | None, label: str) -> Path | None:
        """The cached copy of `name`, downloaded if absent or damaged; None if not stored."""
        path = self.root / name
        if path.is_file():
            if sha256 is None or sha256_of(path) == sha256:
                self.cache.touch(path)
                return path
            path.unlink(missing_ok=True)  # damaged here: fetched again
        partial = self._partial()
        if not self._get(name, partial):
            return None
        if sha256 is not None and sha256_of(partial) != sha256:
            partial.unlink()
            raise ArtifactIntegrityError(f"{label} does not match its sha256 in the manifest")
        self._keep(partial, path)
        return path

    def _keep(self, source: Path, path: Path) -> None:
        """Move a stored file into the cache."""
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, path)
        self.cache.add(path)

    # --- models --------------------------------------------------------------------------------

    def store_model(self, job_id: str) -> str:
        name = model_name(job_id)
        directory = self.work / name
        files = sorted(directory.iterdir())
        for file in files:
            self._put(file, model_file_name(name, file.name))
        target = self.root / name
        shutil.rmtree(target, ignore_errors=True)  # an earlier attempt's copy
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(directory, target)  # this host's copy joins the cache
        self.cache.add(*(target / file.name for file in files))
        return name

    def model_file(self, stored: str, card: Mapping[str, Any], filename: str) -> Path:
        path = self._cached(model_file_name(stored, filename), card["files"][filename], filename)
        if path is None:
            raise ArtifactIntegrityError(f"{filename} is missing from the artifact store")
        return path

    # --- checkpoints ---------------------------------------------------------------------------

    def save_checkpoint(self, job_id: str, epoch: int, state: Path) -> None:
        # One object holds the state with the epoch it follows: a host that dies while
        # uploading leaves the previous checkpoint whole.
        self._put(state, model_file_name(checkpoint_name(job_id), state.name),
                  {"epoch": str(epoch), "sha256": sha256_of(state)})

    def restore_checkpoint(self, job_id: str, adopt: AdoptCheckpoint) -> None:
        directory = self.job_checkpoint_dir(job_id)
        shutil.rmtree(directory, ignore_errors=True)  # the stored one is where the job is
        with self._calling():
            listed = self.client.list_objects_v2(
                Bucket=self.bucket, Prefix=self.key(checkpoint_name(job_id) + "/"))
        objects = listed.get("Contents", [])
        if not objects:
            return
        latest = max(objects, key=lambda found: found.get("LastModified") or 0)
        name = latest.get("Key", "").removeprefix(self.prefix)
        state_file = name.rsplit("/", 1)[-1]
        with self._calling():
            metadata = self.client.head_object(Bucket=self.bucket, Key=self.key(name))["Metadata"]

        def fetch(target: Path) -> None:
            if not self._get(name, target) or sha256_of(target) != metadata.get("sha256"):
                raise ArtifactIntegrityError(f"the checkpoint of job {job_id} does not match "
                                             "its sha256")

        try:
            adopt(int(metadata["epoch"]), state_file, fetch)
        except (ArtifactIntegrityError, KeyError, ValueError) as error:
            log.warning("job %s starts over: its stored checkpoint is unusable (%s)",
                        job_id, error)
            shutil.rmtree(directory, ignore_errors=True)

    def drop_checkpoint(self, job_id: str) -> None:
        shutil.rmtree(self.job_checkpoint_dir(job_id), ignore_errors=True)
        try:
            with self._calling():
                listed = self.client.list_objects_v2(
                    Bucket=self.bucket, Prefix=self.key(checkpoint_name(job_id) + "/"))
                keys: list[ObjectIdentifierTypeDef] = [
                    {"Key": found["Key"]} for found in listed.get("Contents", []) if "Key" in found]
                if keys:
                    self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})
        except StoreUnavailable as error:  # it only takes room: the job is over either way
            log.warning("the checkpoint of job %s stays in the store: %s", job_id, error.message)

    # --- datasets ------------------------------------------------------------------------------

    def store_dataset(self, sha256: str, write: Callable[[Path], None]) -> None:
        name = dataset_name(sha256)
        if self._exists(name):
            return
        partial = self._partial()
        try:
            write(partial)
            self._put(partial, name)
            self._keep(partial, self.root / name)
        finally:
            partial.unlink(missing_ok=True)

    def dataset_path(self, sha256: str) -> Path | None:
        name = dataset_name(sha256)
        return self._cached(name, None, name)

    def delete_dataset(self, sha256: str) -> None:
        name = dataset_name(sha256)
        (self.root / name).unlink(missing_ok=True)
        try:
            with self._calling():
                self.client.delete_object(Bucket=self.bucket, Key=self.key(name))
        except StoreUnavailable as error:  # no row uses it: it only takes room
            log.warning("dataset file %s stays in the store: %s", name, error.message)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))

