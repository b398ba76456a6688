"""The Python client: `Client(url, api_key)` over httpx, one method per route."""

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse

from core.errors import Invalid
from core.job_options import parse_options

TERMINAL = ("succeeded", "failed", "cancelled")
# A large upload is parsed and checked before the answer comes: allow it minutes.
UPLOAD_TIMEOUT_S = 600.0


class CapasAPIError(RuntimeError):
    def __init__(self, status: int, code: str, message: str, details: list | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details or []


def saved_credentials() -> dict[str, str]:
    """What `capas up` saved (the admin key of the first start, the URL of the last), found
    through CAPAS_DATA_DIR (default ./capas-data)."""
    path = Path(os.environ.get("CAPAS_DATA_DIR", "capas-data")) / "credentials.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def environment_url() -> str | None:
    """The API's URL as the environment gives it: CAPAS_URL, else CAPAS_HOST and CAPAS_PORT
    (either one; the other as the server's default), the settings the server itself reads."""
    if os.environ.get("CAPAS_URL"):
        return os.environ["CAPAS_URL"]
    host, port = os.environ.get("CAPAS_HOST"), os.environ.get("CAPAS_PORT")
    if not (host or port):
        return None
    return f"http://{host or '127.0.0.1'}:{port or 8000}"


class Client:
    """A client of the API. Its URL and key are, in this order: the arguments, the environment
    (`environment_url()`, CAPAS_API_KEY), the saved credentials, `http://127.0.0.1:8000`."""

    def __init__(self, url: str | None = None, api_key: str | None = None,
                 timeout: float = 30.0):
        saved = saved_credentials()
        self.url = url or environment_url() or saved.get("url") or "http://127.0.0.1:8000"
        key = api_key or os.environ.get("CAPAS_API_KEY") or saved.get("api_key")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs) -> Any:
        response = self.http.request(method, path, **kwargs)
        if response.is_error:
            self._raise(response)
        return response.json() if response.content else None

    @staticmethod
    def _raise(response: httpx.Response) -> None:
        try:
            error = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            error = {"code": "http_error", "message": response.text}
        raise CapasAPIError(response.status_code, error.get("code", ""),
                            error.get("message", ""), error.get("details"))

    def me(self) -> dict:
        return self.request("GET", "/me")

    def create_user(self, name: str, role: str = "member",
                    models: list[str] | None = None) -> dict:
        """An admin adds a user; the answer's `api_key` is shown this once."""
        return self.request("POST", "/users", json={"name": name, "role": role,
                                                    "models": models or None})

    def users(self) -> list[dict]:
        """Every user with its id and role (admins only)."""
        return self.request("GET", "/users")

    def create_key(self, user_id: int | None = None) -> dict:
        return self.request("POST", "/keys", json={"user_id": user_id})

    def keys(self, user_id: int | None = None) -> list[dict]:
        return self.request("GET", "/keys", params={"user_id": user_id} if user_id else {})

    def revoke_key(self, key_id: int) -> None:
        self.request("DELETE", f"/keys/{key_id}")

    def catalog(self) -> dict:
        return self.request("GET", "/catalog")

    def validate(self, body: dict) -> dict:
        """Shapes, parameter counts and every error of a draft, without submitting it."""
        return self.request("POST", "/specs/validate", json=body)

    def datasets(self) -> list[dict]:
        return self.request("GET", "/datasets")

    def dataset(self, dataset_id: str) -> dict:
        """The schema and a preview of the first samples."""
        return self.request("GET", f"/datasets/{dataset_id}")

    def upload_dataset(self, path: str | Path, *, target: str | None = None,
                       task: str | None = None, name: str | None = None,
                       description: str | None = None, image_size: str | None = None,
                       channels: int | None = None, format: str | None = None) -> dict:
        """Upload a .csv (name its `target` column), .npz (`x`, `y`), .zip of class folders, or
        a .zip or .tar(.gz) of IDX or CIFAR files (their test files stay the test split);
        `image_size` is "HEIGHTxWIDTH". The file is streamed, not read whole."""
        path = Path(path)
        options = {"target": target, "task": task, "name": name, "description": description,
                   "image_size": image_size, "channels": channels, "format": format}
        fields = {key: str(value) for key, value in options.items() if value is not None}
        with path.open("rb") as handle:
            return self.request("POST", "/datasets", files={"file": (path.name, handle)},
                                data=fields, timeout=UPLOAD_TIMEOUT_S)

    def set_dataset_public(self, dataset_id: str, public: bool = True) -> dict:
        """Let every member list, inspect and train on the dataset (`False` closes it again)."""
        return self.request("PATCH", f"/datasets/{dataset_id}", json={"public": public})

    def delete_dataset(self, dataset_id: str) -> None:
        self.request("DELETE", f"/datasets/{dataset_id}")

    def submit(self, body: dict, *, framework: str | None = None,
               submission_id: str | None = None, max_runtime_s: int | None = None,
               max_attempts: int | None = None, name: str | None = None,
               note: str | None = None) -> dict:
        """Queue a job; the options are `JobOptions`', refused here as the API would refuse them."""
        given = {"submission_id": submission_id, "max_runtime_s": max_runtime_s,
                 "max_attempts": max_attempts, "name": name, "note": note}
        try:
            options, _ = parse_options({k: v for k, v in given.items() if v is not None})
        except Invalid as error:
            raise CapasAPIError(error.status, error.code, error.message, error.details) from None
        body = {**body, **options.model_dump(exclude_none=True)}
        if framework:
            body["framework"] = framework
        return self.request("POST", "/jobs", json=body)

    def job(self, job_id: str) -> dict:
        return self.request("GET", f"/jobs/{job_id}")

    def jobs(self, status: str | None = None, limit: int = 50, offset: int = 0) -> list[dict]:
        params = {"limit": limit, "offset": offset, **({"status": status} if status else {})}
        return self.request("GET", "/jobs", params=params)["items"]

    def metrics(self, job_id: str, after_epoch: int = 0) -> list[dict]:
        return self.request("GET", f"/jobs/{job_id}/metrics", params={"after_epoch": after_epoch})

    def evaluation(self, job_id: str) -> dict:
        """The succeeded job's evaluation report on its test split (DESIGN §11)."""
        return self.request("GET", f"/jobs/{job_id}/evaluation")

    def job_code(self, job_id: str, framework: str | None = None) -> str:
        """The job as a standalone plain PyTorch or Keras script (default: its framework)."""
        params = {"framework": framework} if framework else {}
        response = self.http.get(f"/jobs/{job_id}/code", params=params)
        if response.is_error:
            self._raise(response)
        return response.text

    def cancel(self, job_id: str) -> dict:
        return self.request("POST", f"/jobs/{job_id}/cancel")

    def events(self, job_id: str, last_event_id: int = 0, retry_s: float = 1.0,
               on_retry: Callable[[httpx.TransportError], None] | None = None
               ) -> Iterator[tuple[int, str, dict]]:
        """The job's Server-Sent Events as (id, kind, data) until it ends: `status` and
        `epoch` events, then one `end`. A dropped connection (the API restarting, say) is
        resumed from the last event received, so nothing is missed or repeated; `on_retry`
        hears of each failed connection before the next try."""
        return self._stream(f"/jobs/{job_id}/events", last_event_id, retry_s, on_retry)

    def _stream(self, path: str, last_event_id: int, retry_s: float,
                on_retry: Callable[[httpx.TransportError], None] | None = None
                ) -> Iterator[tuple[int, str, dict]]:
        while True:
            try:
                with connect_sse(self.http, "GET", path, timeout=None,
                                 headers={"Last-Event-ID": str(last_event_id)}) as source:
                    if source.response.is_error:
                        source.response.read()
                        self._raise(source.response)
                    for event in source.iter_sse():
                        if event.id:
                            last_event_id = int(event.id)
                        data = json.loads(event.data) if event.data else {}
                        yield last_event_id, event.event, data
                        if event.event == "end":
                            return
            except httpx.TransportError as error:
                if on_retry is not None:
                    on_retry(error)
                time.sleep(retry_s)

    def wait(self, job_id: str, timeout_s: float = 600.0) -> dict:
        """Follow the job's events until it ends; returns the finished job."""
        deadline = time.monotonic() + timeout_s
        for _ in self.events(job_id):
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} did not finish in {timeout_s} s")
        return self.job(job_id)

    def submit_study(self, body: dict) -> dict:
        """Start a study (`core.studies.StudyDefinition`): its first trials are queued."""
        return self.request("POST", "/studies", json=body)

    def study(self, study_id: str) -> dict:
        """The study with every trial (parameters, status, value, curve) and the best so far."""
        return self.request("GET", f"/studies/{study_id}")

    def studies(self, limit: int = 50, offset: int = 0) -> list[dict]:
        return self.request("GET", "/studies", params={"limit": limit, "offset": offset})["items"]

    def cancel_study(self, study_id: str) -> dict:
        return self.request("POST", f"/studies/{study_id}/cancel")

    def publish_best(self, study_id: str, alias: str | None = None) -> dict:
        """Publish the best trial so far as a version of its model, and point `alias` at it."""
        return self.request("POST", f"/studies/{study_id}/publish", json={"alias": alias})

    def study_trials_csv(self, study_id: str) -> str:
        response = self.http.get(f"/studies/{study_id}/trials.csv")
        if response.is_error:
            self._raise(response)
        return response.text

    def study_events(self, study_id: str, last_event_id: int = 0,
                     retry_s: float = 1.0) -> Iterator[tuple[int, str, dict]]:
        """The events of every trial (each with its `job_id` and `trial` number) as (id, kind,
        data), until the study is over and one `end` comes."""
        return self._stream(f"/studies/{study_id}/events", last_event_id, retry_s)

    def wait_study(self, study_id: str, timeout_s: float = 3600.0) -> dict:
        """Follow the study's events until it is over; returns the study."""
        deadline = time.monotonic() + timeout_s
        for _ in self.study_events(study_id):
            if time.monotonic() > deadline:
                raise TimeoutError(f"study {study_id} did not finish in {timeout_s} s")
        return self.study(study_id)

    def models(self) -> list[dict]:
        return self.request("GET", "/models")

    def model(self, name: str) -> dict:
        return self.request("GET", f"/models/{name}")

    def model_version(self, name: str, version: int) -> dict:
        """The model card of one version."""
        return self.request("GET", f"/models/{name}/versions/{version}")

    def set_alias(self, name: str, alias: str, version: int) -> dict:
        return self.request("PUT", f"/models/{name}/aliases/{alias}", json={"version": version})

    def remove_alias(self, name: str, alias: str) -> None:
        """The alias stops resolving; its history records the removal."""
        self.request("DELETE", f"/models/{name}/aliases/{alias}")

    def alias(self, name: str, alias: str) -> dict:
        """Where the alias points and every move it made."""
        return self.request("GET", f"/models/{name}/aliases/{alias}")

    def configure_batching(self, name: str, **batching: int | float | None) -> dict:
        """Set `max_batch_size` and/or `max_delay_ms` for one model; None restores the default."""
        return self.request("PATCH", f"/models/{name}", json={"batching": batching})

    def set_model_public(self, name: str, public: bool = True) -> dict:
        """Let every member read the model and predict with it (`False` closes it again)."""
        return self.request("PATCH", f"/models/{name}", json={"public": public})

    def evaluate(self, name: str, version: int, dataset: str) -> dict:
        """Your version's evaluation report on a dataset, computed by its served ONNX graph."""
        return self.request("POST", f"/models/{name}/versions/{version}/evaluate",
                            json={"dataset": dataset})

    def download(self, name: str, version: int, fmt: str, destination: Path) -> Path:
        """Save an artifact (`onnx`, `safetensors`, `keras`) and check it against its sha256."""
        digest = hashlib.sha256()
        with self.http.stream("GET", f"/models/{name}/versions/{version}/artifacts/{fmt}") \
                as response:
            if response.is_error:
                response.read()
                self._raise(response)
            with destination.open("wb") as handle:
                for chunk in response.iter_bytes():
                    digest.update(chunk)
                    handle.write(chunk)
        if digest.hexdigest() != response.headers["X-Capas-Sha256"]:
            destination.unlink()
            raise CapasAPIError(0, "corrupt_download",
                                f"{fmt} of {name} version {version} did not match its sha256")
        return destination

    def torch_model(self, name: str, version: int) -> Any:
        """The version as a `torch.nn.Module` on raw inputs, giving what `/predict` gives: its
        spec rebuilt, its safetensors weights loaded, its preprocessing first (needs torch;
        `capas.native.torch_model` does the same from files already downloaded)."""
        from capas.native import torch_model

        card = self.model_version(name, version)
        with tempfile.TemporaryDirectory() as folder:
            weights = self.download(name, version, "safetensors",
                                    Path(folder) / "weights.safetensors")
            return torch_model(card, weights)

    def predict(self, model: str, instances: list, version: int | None = None,
                alias: str | None = None) -> dict:
        body: dict[str, Any] = {"instances": instances}
        if version is not None:
            body["version"] = version
        if alias is not None:
            body["alias"] = alias
        return self.request("POST", f"/models/{model}/predict", json=body)
