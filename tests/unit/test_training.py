"""Training in both frameworks: epochs reported, early stopping, divergence, cancellation."""

import math

import numpy as np
import pytest

from ml.backends import get_backend
from ml.datasets import load_builtin
from ml.epochs import EpochMetrics
from ml.spec import parse_job_spec
from ml.training import Checkpoints, Diverged, _Supervisor, prepare, train
from tests.conftest import tiny_job


class Recorder:
    """Records the epochs; with `stop_in_epoch`, asks to stop two batches into that epoch."""

    def __init__(self, stop_in_epoch: int | None = None):
        self.epochs: list[EpochMetrics] = []
        self.checks_this_epoch = 0
        self.stop_in_epoch = stop_in_epoch

    def on_epoch_end(self, metrics: EpochMetrics) -> None:
        self.epochs.append(metrics)
        self.checks_this_epoch = -1  # the check right after the epoch's end

    def should_stop(self) -> bool:
        self.checks_this_epoch += 1
        current = (self.epochs[-1].epoch if self.epochs else 0) + 1
        return current == self.stop_in_epoch and self.checks_this_epoch >= 2


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_training_reports_every_epoch(framework):
    spec = parse_job_spec(tiny_job(framework, epochs=3))
    data = prepare(spec, load_builtin(spec.dataset))
    recorder = Recorder()
    result = train(spec, data, recorder)
    assert [m.epoch for m in recorder.epochs] == [1, 2, 3]
    assert all(math.isfinite(m.val_loss) and 0 <= m.val_accuracy <= 1 for m in recorder.epochs)
    last = recorder.epochs[-1]
    assert last.samples_per_s > 0 and last.learning_rate == pytest.approx(0.05)
    assert 0 <= result.test_metrics["test_accuracy"] <= 1
    assert result.device == "cpu"


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_same_seed_same_weights_at_start(framework):
    spec = parse_job_spec(tiny_job(framework))
    backend = get_backend(framework)
    import keras
    import torch

    torch.manual_seed(1)
    keras.utils.set_random_seed(1)
    a = backend.get_weights(backend.build(spec.model))
    assert a["layers.0.kernel"].shape == (4, 8)
    # glorot_uniform bound for fan_in 4, fan_out 8
    assert np.abs(a["layers.0.kernel"]).max() <= math.sqrt(6 / 12) + 1e-6
    assert np.all(a["layers.0.bias"] == 0)


def stoppable_job(framework: str, epochs: int):
    """A tiny job and its data, with one row a batch: more batches an epoch than a Keras call
    runs, so that a stop request can be seen within an epoch in both frameworks."""
    from ml.backends.keras_backend import MAX_STEPS_PER_EXECUTION

    body = tiny_job(framework, epochs=epochs)
    body["training"]["batch_size"] = 1
    spec = parse_job_spec(body)
    data = prepare(spec, load_builtin(spec.dataset))
    assert len(data.x_train) > 2 * MAX_STEPS_PER_EXECUTION
    return spec, data


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_should_stop_ends_training_within_an_epoch_without_reporting_it(framework):
    spec, data = stoppable_job(framework, epochs=50)
    recorder = Recorder(stop_in_epoch=2)
    train(spec, data, recorder)
    assert [m.epoch for m in recorder.epochs] == [1]


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_a_stopped_job_resumes_from_its_last_epoch_checkpoint(framework, tmp_path):
    spec, data = stoppable_job(framework, epochs=6)
    first = Recorder(stop_in_epoch=4)
    train(spec, data, first, checkpoints=Checkpoints(tmp_path))
    assert [m.epoch for m in first.epochs] == [1, 2, 3]
    assert Checkpoints(tmp_path).epoch == 3
    second = Recorder()
    resumed = train(spec, data, second, checkpoints=Checkpoints(tmp_path),
                    history=first.epochs)
    assert [m.epoch for m in second.epochs] == [4, 5, 6]
    uninterrupted = train(spec, data, Recorder())
    backend = get_backend(framework)
    resumed_weights = backend.get_weights(resumed.native)
    if framework == "pytorch":  # weights, optimizer and random streams all restored: exact
        for name, value in backend.get_weights(uninterrupted.native).items():
            np.testing.assert_array_equal(resumed_weights[name], value)
    assert second.epochs[-1].loss < first.epochs[0].loss


def test_early_stopping_stops_when_the_monitor_stalls():
    body = tiny_job(epochs=200)
    # No change of the loss is this large: every epoch after the first counts as a stall.
    body["training"]["early_stopping"] = {"monitor": "val_loss", "patience": 2,
                                          "min_delta": 1e6}
    spec = parse_job_spec(body)
    data = prepare(spec, load_builtin(spec.dataset))
    recorder = Recorder()
    result = train(spec, data, recorder)
    assert result.stopped_early and [m.epoch for m in recorder.epochs] == [1, 2, 3]


def test_a_non_finite_loss_fails_with_the_epoch():
    supervisor = _Supervisor(parse_job_spec(tiny_job()), Recorder())
    with pytest.raises(Diverged, match=r"diverged at epoch 3 \(loss=nan\)"):
        supervisor.on_epoch_end(EpochMetrics(epoch=3, loss=float("nan")))


def test_checkpoints_of_short_epochs_are_spaced_but_the_last_is_kept(tmp_path):
    spec = parse_job_spec(tiny_job(epochs=5))
    data = prepare(spec, load_builtin(spec.dataset))
    stopped = Checkpoints(tmp_path / "stopped", min_interval_s=3600)
    train(spec, data, Recorder(stop_in_epoch=4), checkpoints=stopped)
    assert stopped.epoch == 1  # the first, then none within the hour until the stop
    finished = Checkpoints(tmp_path / "finished", min_interval_s=3600)
    train(spec, data, Recorder(), checkpoints=finished)
    assert finished.epoch == 5  # the final epoch is always kept


def test_keras_runs_several_steps_a_call_with_the_same_result_as_one(monkeypatch):
    from ml.backends import keras_backend

    spec = parse_job_spec(tiny_job("tensorflow", epochs=3))
    data = prepare(spec, load_builtin(spec.dataset))
    monkeypatch.setattr(keras_backend, "MULTI_STEP_TRACE_CALLS", 0)  # however short the job
    several = train(spec, data, Recorder())
    monkeypatch.setattr(keras_backend, "MAX_STEPS_PER_EXECUTION", 1)
    one = train(spec, data, Recorder())
    for name, weight in keras_backend.get_weights(several.native).items():
        np.testing.assert_array_equal(weight, keras_backend.get_weights(one.native)[name])


def test_keras_steps_a_call_follow_the_model_size_and_the_calls_saved():
    from ml.backends.keras_backend import MAX_STEPS_PER_EXECUTION, steps_per_execution

    small = parse_job_spec(tiny_job("tensorflow"))  # batches of 16
    # 7 + 2 calls an epoch become 1 + 1: 7 saved, 36 epochs pay for the longer tracing
    assert steps_per_execution(small, 100, 20, epochs=36) == MAX_STEPS_PER_EXECUTION
    assert steps_per_execution(small, 100, 20, epochs=35) == 1
    large = tiny_job("tensorflow")
    large["model"]["input"]["shape"] = [4096]
    large["model"]["layers"] = [{"type": "dense", "units": 4096, "activation": "relu"},
                                {"type": "dense", "units": 3, "activation": "softmax"}]
    large["training"]["batch_size"] = 256
    # 3 × 16.8M multiply-adds × 256 rows: some 6 s a step at the assumed rate
    assert steps_per_execution(parse_job_spec(large), 100_000, 20_000, epochs=100) == 1
