"""How many jobs the worker of `capas up` trains at once."""

from capas.cli.supervisor import embedded_concurrency
from core.settings import Settings


def test_the_cores_decide_unless_the_setting_says(monkeypatch, tmp_path):
    monkeypatch.delenv("CAPAS_WORKER_CONCURRENCY", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert embedded_concurrency(Settings(data_dir=tmp_path, torch_threads=2)) == 4
    assert embedded_concurrency(Settings(data_dir=tmp_path, torch_threads=16)) == 1
    monkeypatch.setenv("CAPAS_WORKER_CONCURRENCY", "3")
    assert embedded_concurrency(Settings(data_dir=tmp_path, torch_threads=2)) == 3
