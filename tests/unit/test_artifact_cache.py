"""The object store's cache on a host: least recently used files out past its bound."""

import itertools
from pathlib import Path

from core.artifacts.s3 import LruFiles


def cache_of(root: Path, limit_bytes: int) -> LruFiles:
    ticks = itertools.count(1_000_000_000)  # an injected clock: each use is later than the last
    return LruFiles(root, limit_bytes, clock=lambda: next(ticks))


def put(cache: LruFiles, name: str, size: int) -> Path:
    path = cache.root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    cache.add(path)
    return path


def names(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def test_the_least_recently_used_files_leave_first(tmp_path):
    cache = cache_of(tmp_path, limit_bytes=300)
    first = put(cache, "jobs/a/model/model.onnx", 100)
    put(cache, "jobs/b/model/model.onnx", 100)
    put(cache, "datasets/c.npz", 100)
    cache.touch(first)  # read again: b is now the oldest
    put(cache, "datasets/d.npz", 100)
    assert names(tmp_path) == {"jobs/a/model/model.onnx", "datasets/c.npz", "datasets/d.npz"}
    assert not (tmp_path / "jobs" / "b").exists()  # a model's folder goes with its last file


def test_a_file_larger_than_the_bound_is_kept_while_it_is_the_newest(tmp_path):
    cache = cache_of(tmp_path, limit_bytes=100)
    put(cache, "small", 50)
    put(cache, "large", 500)
    assert names(tmp_path) == {"large"}
    put(cache, "next", 10)
    assert names(tmp_path) == {"next"}
