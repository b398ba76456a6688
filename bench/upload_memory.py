"""Peak memory of the API while it takes a 200 MB CSV upload.

A CSV of random features and an integer label is generated on disk, then uploaded to an
embedded service (`capas up`) with the file streamed from disk. The API process's peak
resident memory (VmHWM in /proc/<pid>/status) is read after a small warm-up upload (its
baseline) and again after the large one; the difference is what taking the upload cost.
Run: `.venv/bin/python bench/upload_memory.py [--mb 200]`.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import running_service  # noqa: E402

FEATURES = 10
ROWS_PER_BLOCK = 100_000
MB = 1024 * 1024


def write_csv(path: Path, size_bytes: int, block_rows: int = ROWS_PER_BLOCK) -> int:
    """Random features (6 decimals) and a label in 0..2: blocks of rows until the file
    reaches the size (at least one block)."""
    rng = np.random.default_rng(0)
    header = ",".join([*(f"f{i}" for i in range(FEATURES)), "label"])
    rows = 0
    with path.open("w") as handle:
        handle.write(header + "\n")
        while rows == 0 or handle.tell() < size_bytes:
            block = np.column_stack([rng.normal(size=(block_rows, FEATURES)),
                                     rng.integers(0, 3, block_rows)])
            np.savetxt(handle, block, fmt=["%.6f"] * FEATURES + ["%d"], delimiter=",")
            rows += block_rows
    return rows


def memory_mb(pid: int) -> dict[str, float]:
    """Current (VmRSS) and peak (VmHWM) resident memory of a process, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024  # kB
    return fields


def upload(client, path: Path, target: str) -> dict:
    with path.open("rb") as handle:
        response = client.post("/datasets", files={"file": (path.name, handle)},
                               data={"target": target}, timeout=900)
    response.raise_for_status()
    return response.json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="size of the generated CSV")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="capas-upload-bench-") as tmp:
        big = Path(tmp) / "big.csv"
        rows = write_csv(big, args.mb * MB)
        small = Path(tmp) / "small.csv"
        write_csv(small, 0, block_rows=1000)
        with running_service() as service:
            pid = service.process.pid
            upload(service.client, small, "label")  # loads what any upload needs
            before = memory_mb(pid)
            started = time.perf_counter()
            dataset = upload(service.client, big, "label")
            seconds = time.perf_counter() - started
            after = memory_mb(pid)
    size_mb = big.stat().st_size / MB if big.exists() else args.mb
    parsed_mb = dataset["num_samples"] * FEATURES * 4 / MB
    growth = after["VmHWM"] - before["VmHWM"]
    print(f"CSV upload: {size_mb:.0f} MB, {rows} rows × {FEATURES} features + label; "
          f"stored as {dataset['num_samples']} samples, task {dataset['task']}")
    print(f"parsed features (float32):          {parsed_mb:8.1f} MB")
    print(f"API RSS before the upload:           {before['VmRSS']:8.1f} MB "
          f"(peak so far {before['VmHWM']:.1f} MB)")
    print(f"API peak RSS after the upload:       {after['VmHWM']:8.1f} MB")
    print(f"peak growth over the baseline:       {growth:8.1f} MB "
          f"= {growth / size_mb:.2f} × the file, {growth / parsed_mb:.2f} × the parsed array")
    print(f"upload, parse and store:             {seconds:8.1f} s")


if __name__ == "__main__":
    main()
