"""Serving latency and throughput: `/predict` and v2 binary against the bare ONNX Runtime call.

A running embedded service (`capas up`) trains and publishes three models: the MLP example
(small: HTTP and JSON dominate), a wide MLP (4M weights: inference about as costly as HTTP)
and a large one (9.7M weights, more than the CPU's cache holds: inference dominates).
For each, side by side in one run:
  - the bare ONNX Runtime call on the downloaded export, in this process: one instance per
    call, and 32 per call, whose gain in instances per second is the most batching can give;
  - `POST /models/{name}/predict` (JSON) and `POST /v2/models/{name}/infer` (binary tensor
    data) with one instance per request, at concurrency 1, 8 and 32, with adaptive batching
    on (the service defaults) and off (`max_batch_size` 1).
It prints p50 and p99 latency, requests per second, the mean batch size the service reported
and the CPU time the API process spent per request (the event loop's HTTP and JSON work plus
inference), then the issue's two ratios:
    single-instance p50 − bare call                        (target ≤ 1 ms)
    throughput at concurrency 32, batching on / off       (target ≥ 3×)
the second measured again in alternating rounds, of which the median is given.
Client and service share this machine's cores; the load generator's own cost is in the
figures. Run: `.venv/bin/python bench/predict.py [--seconds S] [--models mlp wide large]`.
"""

import argparse
import asyncio
import copy
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

from bench.common import run_job, running_service  # noqa: E402
from ml.datasets import load_builtin  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "mlp-digits.json"
CONCURRENCY = (1, 8, 32)
ROUTES = ("/predict", "v2 binary")
BATCHING = {"on": None, "off": 1}  # max_batch_size: the service default, or one per call
RATIO_ROUNDS = 3
HEADER_LENGTH = "Inference-Header-Content-Length"


def model_specs() -> dict[str, dict]:
    small = json.loads(EXAMPLE.read_text())
    small["model"]["name"] = "bench-mlp"
    small["training"]["epochs"] = 3
    wide = copy.deepcopy(small)
    wide["model"]["name"] = "bench-wide"
    wide["model"]["layers"] = [{"type": "dense", "units": 2048, "activation": "relu"},
                               {"type": "dense", "units": 2048, "activation": "relu"},
                               {"type": "dense", "units": 10, "activation": "softmax"}]
    wide["training"]["epochs"] = 1
    large = copy.deepcopy(wide)
    large["model"]["name"] = "bench-large"
    for layer in large["model"]["layers"][:2]:
        layer["units"] = 3072  # 9.7M parameters, just under the default limit of 10M
    return {"mlp": small, "wide": wide, "large": large}


@dataclass
class Result:
    route: str
    concurrency: int
    batching: str
    latencies_s: list[float]  # per request (per call for the bare ONNX Runtime lines)
    wall_s: float
    batch_sizes: list[int]
    api_cpu_s: float | None = None  # CPU time the API process spent meanwhile
    instances_per_call: int = 1

    def row(self) -> list[str]:
        p50, p99 = np.percentile(self.latencies_s, [50, 99]) * 1000
        mean_batch = f"{statistics.mean(self.batch_sizes):.1f}" if self.batch_sizes else "-"
        cpu = (f"{self.api_cpu_s / len(self.latencies_s) * 1000:.3f}"
               if self.api_cpu_s is not None else "-")
        return [self.route, str(self.concurrency), self.batching, f"{p50:.3f}", f"{p99:.3f}",
                f"{self.throughput:.0f}", mean_batch, cpu]

    @property
    def p50_ms(self) -> float:
        return float(np.percentile(self.latencies_s, 50) * 1000)

    @property
    def throughput(self) -> float:
        """Requests (instances, for the bare calls) per second."""
        return len(self.latencies_s) * self.instances_per_call / self.wall_s


def bare_onnx_runtime(onnx_bytes: bytes, batch: np.ndarray, seconds: float) -> Result:
    """One thread, `batch` per call: with one instance, the least a prediction can cost; with
    32, what batching can save at most (the model's own gain, with no HTTP around it)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    feed = {"input": batch}
    for _ in range(20):
        session.run(["output"], feed)
    latencies = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        begin = time.perf_counter()
        session.run(["output"], feed)
        latencies.append(time.perf_counter() - begin)
    return Result(f"bare ONNX Runtime, {len(batch)} per call", 1, "-", latencies,
                  sum(latencies), [], instances_per_call=len(batch))


def v2_binary_body(instance: np.ndarray) -> tuple[bytes, dict[str, str]]:
    raw = np.ascontiguousarray(instance[None], dtype="<f4").tobytes()
    header = json.dumps({
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, *instance.shape],
                    "parameters": {"binary_data_size": len(raw)}}],
        "outputs": [{"name": "output", "parameters": {"binary_data": True}}],
    }).encode()
    return header + raw, {HEADER_LENGTH: str(len(header)),
                          "Content-Type": "application/octet-stream"}


def http_request(host: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}",
             *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection:
    """A bare HTTP/1.1 keep-alive connection.

    The load generator shares the cores with the service, so it must cost far less than
    what it measures: a general client (httpx) adds about half a millisecond per request.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    async def send(self, request: bytes) -> tuple[int, dict[str, str]]:
        self.writer.write(request)
        status = int((await self.reader.readline()).split()[1])
        headers = {}
        while (line := await self.reader.readline()) != b"\r\n":
            key, value = line.decode().split(":", 1)
            headers[key.strip().lower()] = value.strip()
        await self.reader.readexactly(int(headers["content-length"]))
        return status, headers


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(url: httpx.URL, headers: dict[str, str], route: str, name: str,
               instances: np.ndarray, concurrency: int, seconds: float,
               batching: str, api_pid: int) -> Result:
    """`concurrency` clients in a closed loop, each sending its next request on an answer."""
    host = f"{url.host}:{url.port}"
    requests = []
    for x in instances:
        if route == "/predict":
            body = json.dumps({"instances": [x.tolist()]}).encode()
            extra = {"Content-Type": "application/json"}
            path = f"/models/{name}/predict"
        else:
            (body, extra), path = v2_binary_body(x), f"/v2/models/{name}/infer"
        requests.append(http_request(host, path, body, {**headers, **extra}))
    latencies: list[float] = []
    batch_sizes: list[int] = []
    connections = [Connection(*await asyncio.open_connection(url.host, url.port))
                   for _ in range(concurrency)]

    async def one_client(offset: int, deadline: float) -> None:
        connection, index = connections[offset], offset
        while time.perf_counter() < deadline:
            begin = time.perf_counter()
            status, answer = await connection.send(requests[index % len(requests)])
            if status != 200:
                raise RuntimeError(f"{route} answered {status}")
            latencies.append(time.perf_counter() - begin)
            batch_sizes.append(int(answer["x-capas-batch-size"]))
            index += concurrency

    warmup = time.perf_counter() + 0.3
    await asyncio.gather(*[one_client(i, warmup) for i in range(concurrency)])
    latencies.clear()
    batch_sizes.clear()
    started, cpu = time.perf_counter(), cpu_seconds(api_pid)
    await asyncio.gather(*[one_client(i, started + seconds) for i in range(concurrency)])
    wall, cpu = time.perf_counter() - started, cpu_seconds(api_pid) - cpu
    for connection in connections:
        connection.writer.close()
    return Result(route, concurrency, batching, latencies, wall, batch_sizes, cpu)


def bench_model(client: httpx.Client, api_pid: int, spec: dict, seconds: float) -> None:
    name = spec["model"]["name"]
    job = run_job(client, spec)
    card = client.get(f"/models/{name}/versions/{job['model_version']}").json()
    onnx_bytes = client.get(f"/models/{name}/versions/{card['version']}/artifacts/onnx").content
    digits = load_builtin("builtin:digits")
    instances = digits.x[:256].reshape(256, *card["input"]["shape"]).astype(np.float32)

    results = [bare_onnx_runtime(onnx_bytes, instances[:1], seconds),
               bare_onnx_runtime(onnx_bytes, instances[:32], seconds)]
    headers = {"Authorization": client.headers["Authorization"]}

    def measure(batching: str, concurrencies: tuple[int, ...]) -> list[Result]:
        client.patch(f"/models/{name}", json={"batching": {"max_batch_size": BATCHING[batching]}}
                     ).raise_for_status()
        return [asyncio.run(load(client.base_url, headers, route, name, instances, concurrency,
                                 seconds, batching, api_pid))
                for route in ROUTES for concurrency in concurrencies]

    for batching in BATCHING:
        results += measure(batching, CONCURRENCY)
    # The throughput ratio again, on and off alternating: a shared machine drifts by more
    # than the difference between two lines measured a minute apart.
    rounds = [(measure("on", (32,)), measure("off", (32,))) for _ in range(RATIO_ROUNDS)]
    client.patch(f"/models/{name}", json={"batching": {"max_batch_size": None}})

    print(f"\n{name}: {card['params']:,} parameters, input {card['input']['shape']}, "
          f"{seconds:g} s per line")
    columns = ["route", "conc", "batching", "p50 ms", "p99 ms", "req/s", "mean batch",
               "API CPU ms/req"]
    table = [columns, *[r.row() for r in results]]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    for row in table:
        print("  ".join(cell.rjust(width) if i else cell.ljust(width)
                        for i, (cell, width) in enumerate(zip(row, widths, strict=True))))

    def find(route: str, concurrency: int, batching: str) -> Result:
        return next(r for r in results if (r.route, r.concurrency, r.batching)
                    == (route, concurrency, batching))

    bare, bare_batched = results[:2]
    print(f"batching ceiling of the model itself: bare ONNX Runtime computes "
          f"{bare_batched.throughput / bare.throughput:.2f}× the instances per second at 32 "
          f"per call as at 1")
    for index, route in enumerate(ROUTES):
        single = find(route, 1, "on")
        ratios = sorted(on[index].throughput / off[index].throughput for on, off in rounds)
        print(f"{route}: single-instance p50 − bare = {single.p50_ms - bare.p50_ms:.3f} ms "
              f"(target ≤ 1 ms); concurrency 32 throughput batching on/off = "
              f"{statistics.median(ratios):.2f}× (median of {RATIO_ROUNDS} alternating rounds: "
              f"{', '.join(f'{r:.2f}' for r in ratios)}; target ≥ 3×)")


def main() -> None:
    specs = model_specs()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured time per line")
    parser.add_argument("--models", nargs="+", choices=list(specs), default=list(specs))
    args = parser.parse_args()
    with running_service() as service:
        for model in args.models:
            bench_model(service.client, service.process.pid, specs[model], args.seconds)


if __name__ == "__main__":
    main()
