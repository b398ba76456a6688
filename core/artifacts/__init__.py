"""The artifact store: where models, checkpoints and datasets persist, behind one interface.

Two stores: the data dir itself (`LocalStore`, the embedded default: nothing is copied) and
an S3-compatible object store (`S3Store`, `CAPAS_ARTIFACT_URL=s3://bucket/prefix`), which
hosts that share nothing else use. Every name in a store is made here from server-side ids
(job ids, content hashes, the files a model card lists), never from input, and is the same
in both: `jobs/<job id>/model/<file>`, `jobs/<job id>/checkpoint/<file>`,
`datasets/<sha256>.npz`. A host writes a job's files in a working directory (`work`) and
reads stored files from `root`; both are the store's own directory for the local store.
"""

from core.artifacts.store import ArtifactStore, LocalStore, StoreUnavailable
from core.settings import Settings

__all__ = ["ArtifactStore", "LocalStore", "StoreUnavailable", "check_store", "open_store"]


def open_store(settings: Settings) -> ArtifactStore:
    """The store the settings name (cheap to open: an S3 client is made once per process)."""
    if settings.artifact_bucket is None:
        return LocalStore(settings)
    from core.artifacts.s3 import S3Store  # boto3 is imported only where a bucket is used

    return S3Store(settings)


def check_store(settings: Settings) -> None:
    """Refuse to start a server on a store it cannot use: raises `StoreUnavailable` naming the
    directory, the endpoint that does not answer, the bucket that does not exist or the
    credentials that are refused."""
    open_store(settings).check()
