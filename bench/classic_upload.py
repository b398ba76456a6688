"""How long an MNIST-sized upload takes to read: 60,000 + 10,000 images of 28×28 as the four
gzipped IDX files in a .tar.gz, made here from random pixels (nothing is downloaded), read by
the reader the API runs (`ml.uploads.read_upload`), then the same for CIFAR-10's six binary
batches (50,000 + 10,000 images of 32×32×3). Prints the seconds, the best of `--rounds`.
Run: `.venv/bin/python bench/classic_upload.py [--rounds 3]`.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.uploads import UploadLimits, UploadOptions, read_upload  # noqa: E402
from tests.unit.test_classic_uploads import cifar_records, idx, tar_bytes  # noqa: E402

GIB = 1 << 30
LIMITS = UploadLimits(max_archive_bytes=GIB, max_archive_members=1000,
                      max_image_pixels=25_000_000, max_dataset_bytes=2 * GIB)


def mnist_archive(path: Path) -> None:
    import gzip

    rng = np.random.default_rng(0)
    files = {}
    for part, count in (("train", 60_000), ("t10k", 10_000)):
        files[f"{part}-images-idx3-ubyte.gz"] = gzip.compress(
            idx(rng.integers(0, 256, (count, 28, 28))), compresslevel=1)
        files[f"{part}-labels-idx1-ubyte.gz"] = gzip.compress(idx(np.arange(count) % 10))
    path.write_bytes(tar_bytes(files, "w"))


def cifar_archive(path: Path) -> None:
    rng = np.random.default_rng(0)
    files = {f"cifar-10-batches-bin/{name}": cifar_records(
        rng.integers(0, 256, (10_000, 32, 32, 3)), np.arange(10_000) % 10)
        for name in [*(f"data_batch_{i}.bin" for i in range(1, 6)), "test_batch.bin"]}
    path.write_bytes(tar_bytes(files, "w"))


def best_read_s(path: Path, rounds: int) -> tuple[float, tuple[int, ...], int | None]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        dataset = read_upload(path, "tar", UploadOptions(), LIMITS, "ds_bench")
        times.append(time.perf_counter() - start)
    return min(times), dataset.x.shape, dataset.test_samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as folder:
        for name, make in (("MNIST (IDX, gzipped)", mnist_archive),
                           ("CIFAR-10 (binary batches)", cifar_archive)):
            path = Path(folder) / "upload.tar"
            make(path)
            seconds, shape, test = best_read_s(path, rounds)
            print(f"{name}: {path.stat().st_size / 2**20:.0f} MiB read in {seconds:.2f} s "
                  f"(best of {rounds}) → x {list(shape)}, test split {test}")


if __name__ == "__main__":
    main()
