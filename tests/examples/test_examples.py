"""The workshop's exercises in examples/ train to a sensible result on both frameworks."""

import json

import pytest

from ml.datasets import load_builtin
from ml.spec import parse_job_spec
from ml.training import prepare, train
from tests.conftest import EXAMPLES
from tests.unit.test_training import Recorder

pytestmark = pytest.mark.examples

# example → (metric, bound): accuracy at least, or mean absolute error at most
EXPECTED = {
    "mlp-digits.json": ("test_accuracy", 0.95),
    "cnn-digits.json": ("test_accuracy", 0.95),
    "rbf-iris.json": ("test_accuracy", 0.90),
    "moons-playground.json": ("test_accuracy", 0.90),
    "lstm-sine.json": ("test_mae", 0.15),
    # Per time step: the share of the reversed sequences' digits right (chance: 0.1).
    "seq2seq-reverse.json": ("test_accuracy", 0.70),
    # The largest digit of three images (chance: 0.1).
    "cnn-lstm-digit-sequences.json": ("test_accuracy", 0.85),
    "transformer-digit-sequences.json": ("test_accuracy", 0.85),
}


def test_every_example_has_an_expectation():
    assert {path.name for path in EXAMPLES.glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
@pytest.mark.parametrize("name", list(EXPECTED))
def test_example_trains_to_a_sensible_result(name, framework):
    body = json.loads((EXAMPLES / name).read_text())
    spec = parse_job_spec({**body, "framework": framework})
    result = train(spec, prepare(spec, load_builtin(spec.dataset)), Recorder())
    metric, bound = EXPECTED[name]
    value = result.test_metrics[metric]
    assert value >= bound if metric == "test_accuracy" else value <= bound, (metric, value)
