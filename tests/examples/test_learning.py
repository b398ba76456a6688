"""Small models train to a result on both frameworks: the tiny job of the unit tier, and a
binary classifier whose cross-entropy is computed from logits."""

import pytest

from ml.datasets import load_builtin
from ml.spec import parse_job_spec
from ml.training import prepare, train
from tests.conftest import tiny_job
from tests.unit.test_training import Recorder

pytestmark = pytest.mark.examples


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_the_tiny_job_learns(framework):
    spec = parse_job_spec(tiny_job(framework, epochs=15))
    recorder = Recorder()
    result = train(spec, prepare(spec, load_builtin(spec.dataset)), recorder)
    assert recorder.epochs[-1].loss < recorder.epochs[0].loss
    assert result.test_metrics["test_accuracy"] >= 0.8


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_binary_objective_trains_on_logits(framework):
    body = {
        "model": {"name": "moons", "input": {"shape": [2]},
                  "layers": [{"type": "dense", "units": 16, "activation": "relu"},
                             {"type": "dense", "units": 1, "activation": "logistic"}],
                  "objective": "binary_crossentropy"},
        "training": {"optimizer": {"type": "adam", "learning_rate": 0.02}, "epochs": 20},
        "dataset": "builtin:moons",
        "framework": framework,
    }
    spec = parse_job_spec(body)
    result = train(spec, prepare(spec, load_builtin(spec.dataset)), Recorder())
    assert result.test_metrics["test_accuracy"] >= 0.85
