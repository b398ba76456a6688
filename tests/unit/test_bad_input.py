"""Bad input answers a 4xx in the contract's shape: never a 500, never a broken connection,
never memory or time in proportion to what the client claims."""

import asyncio
import fcntl
import http.client
import inspect
import io
import json
import threading
import time

import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient

from api.app import create_app
from api.bodies import JobBody, job_body
from api.routes import jobs, specs
from api.schemas.base import SQL_INT_MAX
from api.uploads import remove_abandoned_uploads, spool_file
from ml.uploads import UploadTooLarge
from ml.uploads.image_folders import CappedStream, decoding_image
from tests.conftest import free_port, tiny_job
from tests.datafiles import png, zip_bytes

BIG = 2**63  # past every integer column, and past SQLite's and PostgreSQL's 64-bit integers


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    return error


def client_with(api, **settings) -> TestClient:
    """A client of a new app on the same data, with some settings changed."""
    changed = api.settings.model_copy(update=settings)
    client = TestClient(create_app(changed), headers=dict(api.headers))
    client.settings = changed
    return client


# --- bodies that are not UTF-8 ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/predict", "/models/iris/predict", "/v2/models/iris/infer"])
def test_a_body_that_is_not_utf8_is_422_in_the_error_shape(api, path):
    response = api.post(path, content=b'{"instances": [[1, 2]], "model": "iris\xff\xfe"}',
                        headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    error = response.json()
    if path.startswith("/v2"):  # the inference protocol's own shape: `error` is the message
        assert error["code"] == "invalid" and "body" in error["error"]
        details = error["details"]
    else:
        assert error["error"]["code"] == "invalid"
        details = error["error"]["details"]
    assert details[0]["field"] == "body"
    assert details[0]["value"].endswith('"model": "iris\\xff\\xfe"}')  # echoed, escaped


def test_a_long_echoed_value_is_cut_to_its_start(api):
    response = api.post("/predict", content=b"\xff" * 100_000,
                        headers={"Content-Type": "application/json"})
    value = assert_error(response, 422, "invalid")["details"][0]["value"]
    assert value.startswith("\\xff") and value.endswith("…") and len(value) < 1000


# --- integers past what SQL holds -------------------------------------------------------------


def integer_requests(job_id: str) -> list[tuple[str, str, dict, str]]:
    """(method, url, request options, field) for every integer a client sends that reaches SQL."""
    return [
        ("GET", f"/jobs?offset={BIG}", {}, "offset"),
        ("GET", f"/jobs/{job_id}/metrics?after_epoch={BIG}", {}, "after_epoch"),
        ("GET", f"/jobs/{job_id}/events?after={BIG}", {}, "after"),
        ("GET", f"/jobs/{job_id}/events", {"headers": {"Last-Event-ID": str(BIG)}},
         "last-event-id"),
        ("DELETE", f"/keys/{BIG}", {}, "key_id"),
        ("GET", f"/keys?user_id={BIG}", {}, "user_id"),
        ("POST", "/keys", {"json": {"user_id": BIG}}, "user_id"),
        ("GET", f"/models/iris/versions/{BIG}", {}, "version"),
        ("GET", f"/models/iris/versions/{BIG}/artifacts/onnx", {}, "version"),
        ("PUT", "/models/iris/aliases/production", {"json": {"version": BIG}}, "version"),
        ("PATCH", "/models/iris", {"json": {"batching": {"max_batch_size": BIG}}},
         "batching.max_batch_size"),
        ("POST", "/models/iris/predict", {"json": {"instances": [[1]], "version": BIG}},
         "version"),
        ("GET", f"/v2/models/iris/versions/{BIG}", {}, "version"),
        ("GET", f"/v2/models/iris/versions/{BIG}/ready", {}, "version"),
        ("POST", f"/v2/models/iris/versions/{BIG}/infer", {"json": {"inputs": []}}, "version"),
    ]


def test_every_integer_past_the_sql_range_is_422_naming_it(api):
    job_id = api.post("/jobs", json=tiny_job()).json()["id"]
    for method, url, options, field in integer_requests(job_id):
        response = api.request(method, url, **options)
        assert response.status_code == 422, (url, response.text)
        body = response.json()
        details = body["details"] if url.startswith("/v2") else body["error"]["details"]
        assert details[0]["field"] == field, (url, details)
        assert str(details[0]["value"]) == str(BIG), (url, details)
    # The largest value that fits still reaches the service, which finds nothing there.
    assert api.get(f"/jobs?offset={SQL_INT_MAX}").json()["items"] == []
    assert_error(api.delete(f"/keys/{SQL_INT_MAX}"), 404, "not_found")


# --- archives whose headers claim more than they hold -----------------------------------------


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def npz_with_x_claiming(shape: tuple[int, ...], data: bytes) -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": shape})
    return zip_bytes({"x.npy": header.getvalue() + data, "y.npy": npy(np.array([0, 1]))})


def test_an_npz_whose_header_claims_a_huge_array_is_refused_by_name(api):
    archive = npz_with_x_claiming((10**12, 10), bytes(64))
    error = assert_error(api.post("/datasets", files={"file": ("huge.npz", archive)}),
                         422, "invalid")
    assert error["message"].startswith("array 'x' claims shape [1000000000000, 10]")
    assert error["details"][0]["array"] == "x"


def test_an_npz_array_larger_than_the_dataset_limit_is_refused_before_it_loads(api):
    client = client_with(api, max_dataset_mb=1)
    archive = npz_with_x_claiming((300, 1000), bytes(300 * 1000 * 4))  # 1.2 MB of float32
    error = assert_error(client.post("/datasets", files={"file": ("big.npz", archive)}),
                         413, "payload_too_large")
    assert "array 'x' of shape [300, 1000] exceeds the dataset limit" in error["message"]


def test_an_archive_member_that_inflates_past_any_image_is_refused_by_name(api):
    client = client_with(api, max_image_pixels=10_000)
    archive = zip_bytes({"a/1.png": png("red"), "b/1.png": png("blue"),
                         "b/bomb.png": bytes(4 << 20)})  # 4 MiB of zeros in a few kB
    error = assert_error(client.post("/datasets", files={"file": ("bomb.zip", archive)}),
                         413, "payload_too_large")
    assert error["message"].startswith("archive member 'b/bomb.png' expands to more than")
    assert error["details"][0]["member"] == "b/bomb.png"
    assert list(client.settings.upload_temp_dir.iterdir()) == []


class EndlessStream(io.RawIOBase):
    """`prefix`, then zeros for ever; counts what was read of it."""

    def __init__(self, prefix: bytes = b""):
        super().__init__()
        self.prefix, self.served = prefix, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        head = self.prefix[self.served:self.served + len(buffer)]
        chunk = head + bytes(len(buffer) - len(head))
        buffer[:len(chunk)] = chunk
        self.served += len(chunk)
        return len(chunk)


def test_a_member_stream_is_never_read_past_its_cap():
    endless = EndlessStream()
    with pytest.raises(UploadTooLarge, match="archive member 'b/bomb.png'"):
        CappedStream(endless, 10_000, "b/bomb.png").read()
    assert endless.served <= 10_001


def test_an_image_decodes_from_its_member_as_it_streams_and_stops_at_the_cap():
    # A greyscale image of a million pixels whose bytes never end: its header reads, and the
    # decoder reads no further than the cap once asked for the pixels.
    endless = EndlessStream(b"P5 1000 1000 255\n")
    with pytest.raises(UploadTooLarge, match="archive member 'a/big.pgm'"):
        with decoding_image(endless, "a/big.pgm", cap=10_000) as image:
            assert image.size == (1000, 1000)
            image.load()
    assert endless.served <= 10_001


# --- bodies too large, too slow, too many layers ----------------------------------------------


def test_a_chunked_body_past_the_cap_is_413_in_the_error_shape(api):
    client = client_with(api, max_body_mb=1)
    chunks = (b"x" * (1 << 20) for _ in range(3))  # no Content-Length: sent chunked
    error = assert_error(client.post("/jobs", content=chunks,
                                     headers={"Content-Type": "application/json"}),
                         413, "payload_too_large")
    assert error["message"] == f"request body exceeds {1 << 20} bytes"


def stalled_request(app, method: str, path: str, headers: dict[str, str],
                    first_chunk: bytes) -> tuple[int, dict[bytes, bytes], dict]:
    """The app's answer to a body whose first chunk arrives and whose rest never does."""
    sent = []
    chunks = [{"type": "http.request", "body": first_chunk, "more_body": True}]

    async def receive() -> dict:
        if chunks:
            return chunks.pop()
        await asyncio.Event().wait()  # the client stopped sending
        raise AssertionError("unreachable")

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": b"", "client": ("127.0.0.1", 50000),
             "server": ("testserver", 80),
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    # The bound only keeps a broken server from hanging the suite.
    asyncio.run(asyncio.wait_for(app(scope, receive, send), timeout=60))
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start["headers"]), json.loads(body)


@pytest.mark.parametrize("path, content_type, first_chunk", [
    ("/jobs", "application/json", b'{"model": '),
    ("/predict", "application/json", b'{"instances": '),
    ("/v2/models/iris/infer", "application/json", b'{"inputs": '),
    ("/datasets", "multipart/form-data; boundary=b", b"--b\r\nContent-Disposition: form-data"),
])
def test_a_body_that_stops_arriving_is_answered_408_and_its_connection_closed(
        api, path, content_type, first_chunk):
    app = create_app(api.settings.model_copy(update={"body_timeout_s": 0.05}))
    headers = {"Authorization": api.headers["Authorization"], "Content-Type": content_type,
               "Content-Length": "100000"}
    status, response_headers, body = stalled_request(app, "POST", path, headers, first_chunk)
    assert status == 408 and response_headers[b"connection"] == b"close"
    error = body if path.startswith("/v2") else body["error"]
    assert error["code"] == "request_timeout"


def test_a_model_of_too_many_layers_is_refused_before_it_is_parsed(api):
    job = tiny_job()
    count = api.settings.max_layers + 1
    job["model"]["layers"] = [{"type": "dropout"}] * (count - 1) + job["model"]["layers"][-1:]
    for path in ("/jobs", "/specs/validate"):
        error = assert_error(api.post(path, json=job), 422, "invalid")
        assert error["message"] == (f"model.layers: {count} layers exceed the limit of "
                                    f"{api.settings.max_layers}")
        assert error["details"] == [{"field": "model.layers", "value": count,
                                     "limit": api.settings.max_layers}]
    job["model"]["layers"] = job["model"]["layers"][1:]  # at the limit
    assert api.post("/specs/validate", json=job).json()["valid"] is True


def test_specs_are_checked_in_the_thread_pool_not_on_the_event_loop():
    # FastAPI runs plain functions in its thread pool; a coroutine would hold the loop (and
    # every other request, /healthz included) for as long as the spec takes.
    for endpoint in (jobs.submit_job, specs.validate_spec):
        assert not inspect.iscoroutinefunction(endpoint)
        assert inspect.signature(endpoint).parameters["body"].annotation == JobBody
    assert not inspect.iscoroutinefunction(job_body)


# --- strict types, bounded strings --------------------------------------------------------------


@pytest.mark.parametrize("written", ["Infinity", "-Infinity", "NaN", "1e400"])
def test_a_learning_rate_that_is_not_a_finite_number_is_refused(api, written):
    body = json.dumps(tiny_job()).replace('"learning_rate": 0.05', f'"learning_rate": {written}')
    response = api.post("/jobs", content=body, headers={"Content-Type": "application/json"})
    detail = assert_error(response, 422, "invalid")["details"][0]
    assert detail["field"] == "training.optimizer.learning_rate"
    assert detail["message"].startswith("expected a finite number, received")
    assert detail["value"] in ("Infinity", "-Infinity", "NaN")
    errors = api.post("/specs/validate", content=body,
                      headers={"Content-Type": "application/json"}).json()["errors"]
    assert [(e["field"], e["value"]) for e in errors] == [
        ("training.optimizer.learning_rate", detail["value"])]


@pytest.mark.parametrize("units, message", [
    ("12", "expected an integer, received '12'"),
    (True, "expected an integer, received True"),
    (12.0, "expected an integer, received 12.0"),
])
def test_a_number_is_never_converted_from_another_type(api, units, message):
    job = tiny_job()
    job["model"]["layers"][0]["units"] = units
    assert api.post("/specs/validate", json=job).json()["errors"] == [
        {"field": "model.layers[0].units", "message": message, "value": units}]
    job = tiny_job()
    job["model"]["layers"][0]["use_bias"] = 1
    assert api.post("/specs/validate", json=job).json()["errors"] == [
        {"field": "model.layers[0].use_bias", "message": "expected true or false, received 1",
         "value": 1}]


def test_strings_and_lists_in_bodies_are_bounded(api):
    job = tiny_job()
    job["model"]["layers"][0]["activation"] = "x" * 100_000
    [error] = api.post("/specs/validate", json=job).json()["errors"]
    assert error["field"] == "model.layers[0].activation"
    assert error["message"].startswith("expected at most 64 characters, received 100000")
    assert len(error["value"]) < 1000
    detail = assert_error(api.post("/jobs", json={**tiny_job(), "submission_id": "s" * 201}),
                          422, "invalid")["details"][0]
    assert detail["field"] == "submission_id"
    detail = assert_error(api.post("/predict", json={"model": "iris", "instances": [[1]],
                                                     "alias": "a" * 201}),
                          422, "invalid")["details"][0]
    assert detail["field"] == "alias"
    detail = assert_error(api.post("/keys", json={"user_id": "1"}), 422, "invalid")["details"][0]
    assert detail["field"] == "user_id"  # an id is a number, not a string of digits


# --- the connection after a fault of ours -------------------------------------------------------


def test_a_server_error_says_it_closes_the_connection_and_the_next_request_works(
        embedded_settings):
    app = create_app(embedded_settings)

    @app.get("/test-fault")
    def fault() -> None:
        raise RuntimeError("a fault of ours")

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60  # only bounds a server that never starts
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.request("GET", "/test-fault")
        response = connection.getresponse()
        assert response.status == 500 and response.getheader("Connection") == "close"
        assert json.loads(response.read())["error"]["code"] == "internal"
        # The client opens a new connection, as the answer told it to: the server has
        # dropped the old one.
        connection.request("GET", "/healthz")
        assert connection.getresponse().status == 200
        connection.close()
    finally:
        server.should_exit = True
        thread.join(timeout=60)


# --- temporary files of uploads ---------------------------------------------------------------


def test_the_api_removes_uploads_left_by_a_dead_process_as_it_starts(embedded_settings):
    directory = embedded_settings.upload_temp_dir
    directory.mkdir(parents=True, exist_ok=True)
    abandoned = directory / "0f0f.upload"
    abandoned.write_bytes(b"half a file")  # its process died: nothing holds its lock
    in_flight = directory / "1e1e.upload"
    in_flight.write_bytes(b"being received")
    with in_flight.open("rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as the process receiving it holds it
        with TestClient(create_app(embedded_settings)) as client:
            assert client.get("/healthz").status_code == 200
        assert not abandoned.exists() and in_flight.exists()


def test_an_upload_in_progress_keeps_its_temporary_file_while_another_api_starts(
        embedded_settings):
    with spool_file(embedded_settings.upload_temp_dir) as path:
        path.write_bytes(b"being received")
        assert remove_abandoned_uploads(embedded_settings) == 0
        assert path.exists()
    assert not path.exists()
