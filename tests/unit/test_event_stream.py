"""`GET /events`: one Server-Sent Events stream of all the caller's jobs, resumable, through
FastAPI's own SSE support; and a job's own stream on the same support."""

import asyncio
import json
from collections.abc import Callable

from core.db import session_scope
from core.models import JobStatus
from core.repositories.jobs import JobRepository
from tests.conftest import tiny_job

Event = tuple[str, str, dict]  # (id, kind, data)


def read_stream(api, path: str, key: str | None = None, headers: dict[str, str] | None = None,
                until: Callable[[list[Event]], bool] = lambda events: False,
                on_event: Callable[[Event], None] = lambda event: None) -> list[Event]:
    """The events of an endless stream, read from the app itself until `until(events)` holds,
    when the client goes away; `on_event` is called on each as it arrives."""
    events: list[Event] = []
    buffer = ""
    gone = asyncio.Event()
    requested = False

    async def receive() -> dict:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        nonlocal buffer
        if message["type"] == "http.response.start":
            assert message["status"] == 200, message
            return
        buffer += message.get("body", b"").decode()
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            fields = dict(line.split(": ", 1) for line in block.splitlines()
                          if not line.startswith(":"))
            if "event" in fields:
                event = (fields.get("id", ""), fields["event"], json.loads(fields["data"]))
                events.append(event)
                on_event(event)
        if until(events):
            gone.set()

    path, _, query = path.partition("?")
    sent_headers = {"authorization": f"Bearer {key or api.headers['Authorization'][7:]}",
                    **(headers or {})}
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": query.encode(), "client": ("127.0.0.1", 50000),
             "server": ("testserver", 80),
             "headers": [(k.encode(), v.encode()) for k, v in sent_headers.items()]}
    # The bound only keeps a broken stream from hanging the suite.
    asyncio.run(asyncio.wait_for(api.app(scope, receive, send), timeout=60))
    return events


def member_key(api, name: str) -> str:
    return api.post("/users", json={"name": name}).json()["api_key"]


def submit(api, key: str, name: str) -> str:
    response = api.post("/jobs", json=tiny_job(name=name),
                        headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def train(api, job_id: str, epochs: list[int], status: JobStatus | None = None) -> None:
    """What a worker records: the claim, each epoch (again for a resumed one), the end."""
    with session_scope(api.settings) as session:
        jobs = JobRepository(session)
        jobs.claim(job_id, "w@h/1")
        for epoch in epochs:
            jobs.record_epoch(job_id, epoch, {"loss": 1.0 / epoch}, {})
        if status is not None:
            jobs.finish(job_id, status, worker="w@h/1")


def test_the_stream_starts_now_and_carries_the_callers_jobs_only(api):
    ada = member_key(api, "ada")
    own, others = submit(api, ada, "ada-net"), submit(api, api.headers["Authorization"][7:],
                                                      "admin-net")

    def work(event: Event) -> None:
        if event[1] == "position":  # the stream is open: the jobs run
            train(api, others, [1])
            train(api, own, [1, 2], JobStatus.succeeded)

    events = read_stream(api, "/events", ada, on_event=work,
                         until=lambda events: any(e[2].get("status") == "succeeded"
                                                  for e in events))
    position, *rest = events
    assert position[1] == "position" and position[2] == {"after": int(position[0])}
    # Nothing from before the stream opened (the jobs' `queued`), nothing of another's job.
    assert {data["job_id"] for _, _, data in rest} == {own}
    assert [(kind, data.get("status", data.get("epoch"))) for _, kind, data in rest] == [
        ("status", "running"), ("epoch", 1), ("epoch", 2), ("status", "succeeded")]
    assert [int(event_id) for event_id, _, _ in rest] == sorted(
        int(event_id) for event_id, _, _ in rest)
    assert all(int(event_id) > int(position[0]) for event_id, _, _ in rest)


def test_an_admin_sees_every_job_and_a_stream_resumes_after_its_last_event(api):
    ada = member_key(api, "ada")
    own, others = submit(api, ada, "ada-net"), submit(api, api.headers["Authorization"][7:],
                                                      "admin-net")
    train(api, own, [1, 2, 3, 2], JobStatus.succeeded)  # epoch 2 trained again: resumed
    train(api, others, [1])

    def everything(events: list[Event]) -> bool:
        return sum(kind == "epoch" for _, kind, _ in events) == 4

    replayed = read_stream(api, "/events?after=0", until=everything)[1:]
    assert {data["job_id"] for _, _, data in replayed} == {own, others}
    ada_events = [event for event in replayed if event[2]["job_id"] == own]
    # Each epoch once, with the values it was trained to last.
    assert [data["epoch"] for _, kind, data in ada_events if kind == "epoch"] == [1, 3, 2]
    third = ada_events[2][0]
    resumed = read_stream(api, "/events", ada, headers={"last-event-id": third},
                          until=lambda events: len(events) == 1 + len(ada_events) - 3)
    assert resumed[0][:2] == (third, "position")
    assert resumed[1:] == ada_events[3:]


def test_the_stream_is_a_persons_and_its_position_a_bounded_integer(api):
    app_key = api.post("/users", json={"name": "kiosk", "role": "app", "models": ["x"]})
    assert api.get("/events", headers={"Authorization": f"Bearer {app_key.json()['api_key']}"}
                   ).status_code == 403
    assert api.get("/events", headers={"Authorization": ""}).status_code == 401
    response = api.get("/events", headers={"Last-Event-ID": "-1"})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "last-event-id"


def test_a_jobs_own_stream_replays_it_and_ends_with_it(api):
    job = submit(api, api.headers["Authorization"][7:], "tiny")
    train(api, job, [1, 2], JobStatus.failed)
    events = read_stream(api, f"/jobs/{job}/events")  # ends by itself
    assert [kind for _, kind, _ in events] == ["status", "status", "epoch", "epoch", "status",
                                               "end"]
    assert events[-1] == ("", "end", {"status": "failed"})
    response = api.get(f"/jobs/{job}/events")
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
