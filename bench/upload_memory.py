"""Peak memory of the API while it takes a 200 MB CSV upload, ZIP bombs and large images.

A CSV of random features and an integer label is generated on disk, then uploaded to an
embedded service (`capas up`) with the file streamed from disk. The API process's peak
resident memory (VmHWM in /proc/<pid>/status) is read after a small warm-up upload (its
baseline) and again after the large one; the difference is what taking the upload cost.
Then, on the same service, each after the last: a 1 MB ZIP whose one member inflates to
1000 MiB (under `MAX_ARCHIVE_MB`), three of them at once, and a ZIP of two images at the pixel
limit (`MAX_IMAGE_PIXELS`), the largest an upload of images may decode.
Run: `.venv/bin/python bench/upload_memory.py [--mb 200] [--bomb-mib 1000]`.
"""

import argparse
import io
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
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


def upload(client, path: Path, target: str | None = None):
    """The answer to uploading the file (raised unless `target` is None, for refusals)."""
    with path.open("rb") as handle:
        response = client.post("/datasets", files={"file": (path.name, handle)},
                               data={"target": target} if target else {}, timeout=900)
    if target:
        response.raise_for_status()
    return response


def png(size: tuple[int, int]) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", size, 128).save(buffer, "PNG")
    return buffer.getvalue()


def write_zip_bomb(path: Path, member_mib: int) -> None:
    """Two small images, and one member of zeros that inflates to `member_mib` MiB."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a/1.png", png((8, 8)))
        archive.writestr("b/1.png", png((8, 8)))
        with archive.open("b/bomb.png", "w", force_zip64=True) as member:
            for _ in range(member_mib):
                member.write(bytes(MB))


def write_large_images(path: Path, pixels: int) -> None:
    """Two square grey images of `pixels` pixels each, in two class folders."""
    side = int(pixels ** 0.5)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a/1.png", png((side, side)))
        archive.writestr("b/1.png", png((side, side)))


def growth_of(pid: int, *uploads) -> tuple[float, list]:
    """The API's peak memory growth (MB) over its peak so far while the uploads run at once,
    and their answers. The kernel's peak is reset first, so that an earlier upload's peak
    does not hide this one's."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = memory_mb(pid)["VmHWM"]
    with ThreadPoolExecutor(len(uploads)) as pool:
        answers = list(pool.map(lambda run: run(), uploads))
    return memory_mb(pid)["VmHWM"] - before, answers


def main() -> None:
    from core.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="size of the generated CSV")
    parser.add_argument("--bomb-mib", type=int, default=1000,
                        help="what the ZIP bomb's member inflates to")
    args = parser.parse_args()
    pixels = Settings().max_image_pixels
    with tempfile.TemporaryDirectory(prefix="capas-upload-bench-") as tmp:
        big = Path(tmp) / "big.csv"
        rows = write_csv(big, args.mb * MB)
        small = Path(tmp) / "small.csv"
        write_csv(small, 0, block_rows=1000)
        bomb = Path(tmp) / "bomb.zip"
        write_zip_bomb(bomb, args.bomb_mib)
        bomb_mb = bomb.stat().st_size / MB
        images = Path(tmp) / "images.zip"
        write_large_images(images, pixels)
        with running_service() as service:
            pid = service.process.pid
            upload(service.client, small, "label")  # loads what any upload needs
            before = memory_mb(pid)
            started = time.perf_counter()
            dataset = upload(service.client, big, "label").json()
            seconds = time.perf_counter() - started
            after = memory_mb(pid)
            bomb_growth, [bomb_answer] = growth_of(pid, lambda: upload(service.client, bomb))
            bombs_growth, _ = growth_of(pid, *[lambda: upload(service.client, bomb)] * 3)
            images_growth, [images_answer] = growth_of(
                pid, lambda: upload(service.client, images))
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
    print(f"ZIP bomb: {bomb_mb:.1f} MB, one member inflating to "
          f"{args.bomb_mib} MiB; answered {bomb_answer.status_code}: "
          f"{bomb_answer.json()['error']['message']}")
    print(f"peak growth, one bomb:               {bomb_growth:8.1f} MB")
    print(f"peak growth, three bombs at once:    {bombs_growth:8.1f} MB")
    side = int(pixels ** 0.5)
    stored = images_answer.json()
    dataset_mb = 2 * side * side * 4 / MB
    print(f"two {side}×{side} images (the pixel limit): answered {images_answer.status_code}, "
          f"{stored.get('feature_shape')}; the dataset is {dataset_mb:.1f} MB of float32")
    print(f"peak growth, two images at the limit: {images_growth:7.1f} MB "
          f"= the dataset + {images_growth - dataset_mb:.1f} MB")


if __name__ == "__main__":
    main()
