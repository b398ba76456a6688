"""Training on the GPU: every layer type, the examples, checkpoints and the exported model."""

import shutil

import numpy as np
import pytest

from ml.artifacts import export_max_abs_diff, write_model
from ml.backends import get_backend
from ml.datasets import load_builtin
from ml.spec import parse_job_spec
from ml.training import Checkpoints, prepare, train
from tests.conftest import EXAMPLES, every_layer_job, example, tiny_job
from tests.gpu.conftest import needs_cuda
from tests.unit.test_training import Recorder

pytestmark = needs_cuda

torch_backend = get_backend("pytorch")


def _train_both(body: dict):
    spec = parse_job_spec(body)
    data = prepare(spec, load_builtin(spec.dataset))
    on_gpu, on_cpu = Recorder(), Recorder()
    gpu = train(spec, data, on_gpu, device="cuda")
    cpu = train(spec, data, on_cpu, device="cpu")
    return spec, data, (gpu, on_gpu), (cpu, on_cpu)


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.json")))
def test_an_example_learns_on_the_gpu_as_on_the_cpu(name):
    body = example(name)
    body["framework"] = "pytorch"
    spec, _, (gpu, on_gpu), (cpu, on_cpu) = _train_both(body)
    assert gpu.device == "cuda" and cpu.device == "cpu"
    assert [m.epoch for m in on_gpu.epochs] == [m.epoch for m in on_cpu.epochs]
    assert on_gpu.epochs[-1].loss < on_gpu.epochs[0].loss
    # Same initial weights and batch order; dropout masks and TF32 convolutions differ, so
    # the two runs agree on how well they learned, not to the bit.
    key = "test_accuracy" if spec.model.task == "classification" else "test_mae"
    gpu_score, cpu_score = gpu.test_metrics[key], cpu.test_metrics[key]
    if key == "test_accuracy":
        assert gpu_score >= cpu_score - 0.05, (gpu_score, cpu_score)
    else:
        assert gpu_score <= cpu_score * 1.5 + 0.02, (gpu_score, cpu_score)


def test_every_layer_type_trains_on_the_gpu_and_exports_with_parity(tmp_path):
    spec, data, (gpu, recorder), _ = _train_both(every_layer_job("pytorch"))
    assert gpu.device == "cuda" and len(recorder.epochs) == spec.training.epochs
    weights = torch_backend.get_weights(gpu.native)
    manifest = write_model(tmp_path, spec, weights, data.preprocessing,
                           {"framework": "pytorch"})
    raw = data.x_val * data.preprocessing.scale + data.preprocessing.shift
    native = torch_backend.predict(gpu.native, data.x_val)
    assert export_max_abs_diff(tmp_path, manifest, raw, native) < 1e-4


def test_a_gpu_checkpoint_resumes_exactly_on_the_gpu_and_also_on_the_cpu(tmp_path):
    spec = parse_job_spec(tiny_job("pytorch", epochs=6))  # has dropout: the GPU's own RNG
    data = prepare(spec, load_builtin(spec.dataset))
    first = Recorder(stop_in_epoch=4)
    train(spec, data, first, device="cuda", checkpoints=Checkpoints(tmp_path / "gpu"))
    assert Checkpoints(tmp_path / "gpu").epoch == 3
    shutil.copytree(tmp_path / "gpu", tmp_path / "cpu")
    resumed = train(spec, data, Recorder(), device="cuda",
                    checkpoints=Checkpoints(tmp_path / "gpu"), history=first.epochs)
    uninterrupted = train(spec, data, Recorder(), device="cuda")
    expected = torch_backend.get_weights(uninterrupted.native)
    for name, value in torch_backend.get_weights(resumed.native).items():
        np.testing.assert_allclose(value, expected[name], rtol=1e-5, atol=1e-6, err_msg=name)
    # A job re-queued from a GPU worker may land on a CPU one.
    on_cpu = Recorder()
    moved = train(spec, data, on_cpu, device="cpu", checkpoints=Checkpoints(tmp_path / "cpu"),
                  history=first.epochs)
    assert moved.device == "cpu" and [m.epoch for m in on_cpu.epochs] == [4, 5, 6]
