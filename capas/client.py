"""The Python client: `Client(url, api_key)` over httpx, one method per route."""

import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

TERMINAL = ("succeeded", "failed", "cancelled")


class CapasAPIError(RuntimeError):
    def __init__(self, status: int, code: str, message: str, details: list | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details or []


def saved_credentials() -> dict[str, str]:
    """What `capas up` saved on first start, found through CAPAS_DATA_DIR (default ./capas-data)."""
    path = Path(os.environ.get("CAPAS_DATA_DIR", "capas-data")) / "credentials.json"
    return json.loads(path.read_text()) if path.is_file() else {}


class Client:
    def __init__(self, url: str | None = None, api_key: str | None = None,
                 timeout: float = 30.0):
        saved = saved_credentials()
        self.url = url or os.environ.get("CAPAS_URL") or saved.get("url") \
            or "http://127.0.0.1:8000"
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
        return response.json()

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

    def datasets(self) -> list[dict]:
        return self.request("GET", "/datasets")

    def submit(self, body: dict, *, framework: str | None = None,
               submission_id: str | None = None, max_runtime_s: int | None = None) -> dict:
        body = dict(body)
        if framework:
            body["framework"] = framework
        if submission_id:
            body["submission_id"] = submission_id
        if max_runtime_s:
            body["max_runtime_s"] = max_runtime_s
        return self.request("POST", "/jobs", json=body)

    def job(self, job_id: str) -> dict:
        return self.request("GET", f"/jobs/{job_id}")

    def jobs(self, status: str | None = None, limit: int = 50, offset: int = 0) -> list[dict]:
        params = {"limit": limit, "offset": offset, **({"status": status} if status else {})}
        return self.request("GET", "/jobs", params=params)["items"]

    def metrics(self, job_id: str, after_epoch: int = 0) -> list[dict]:
        return self.request("GET", f"/jobs/{job_id}/metrics", params={"after_epoch": after_epoch})

    def follow(self, job_id: str, poll_s: float = 0.25) -> Iterator[tuple[dict, list[dict]]]:
        """Yield (job, new metric rows) until the job ends; the last yield has the final job."""
        after = 0
        while True:
            job = self.job(job_id)
            rows = self.metrics(job_id, after_epoch=after)
            if rows:
                after = rows[-1]["epoch"]
            yield job, rows
            if job["status"] in TERMINAL:
                return
            time.sleep(poll_s)

    def wait(self, job_id: str, timeout_s: float = 600.0) -> dict:
        deadline = time.monotonic() + timeout_s
        job: dict = {}
        for job, _ in self.follow(job_id):
            if job["status"] not in TERMINAL and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout_s} s")
        return job

    def models(self) -> list[dict]:
        return self.request("GET", "/models")

    def model(self, name: str) -> dict:
        return self.request("GET", f"/models/{name}")

    def model_version(self, name: str, version: int) -> dict:
        """The model card of one version."""
        return self.request("GET", f"/models/{name}/versions/{version}")

    def set_alias(self, name: str, alias: str, version: int) -> dict:
        return self.request("PUT", f"/models/{name}/aliases/{alias}", json={"version": version})

    def alias(self, name: str, alias: str) -> dict:
        """Where the alias points and every move it made."""
        return self.request("GET", f"/models/{name}/aliases/{alias}")

    def configure_batching(self, name: str, **batching: int | float | None) -> dict:
        """Set `max_batch_size` and/or `max_delay_ms` for one model; None restores the default."""
        return self.request("PATCH", f"/models/{name}", json={"batching": batching})

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

    def predict(self, model: str, instances: list, version: int | None = None,
                alias: str | None = None) -> dict:
        body: dict[str, Any] = {"instances": instances}
        if version is not None:
            body["version"] = version
        if alias is not None:
            body["alias"] = alias
        return self.request("POST", f"/models/{model}/predict", json=body)
