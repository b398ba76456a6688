"""Each optimizer updates weights alike on both backends, and the catalog states the rule run.

The torch backend implements Keras's update formulas (`ml.backends.torch_optim`) where torch's
own differ; here both are fed the same gradients and must move the same weights the same way.
"""

import numpy as np
import pytest
import torch

from ml.backends import keras_backend, torch_backend
from ml.catalog import OPTIMIZER_UPDATES
from ml.spec import OPTIMIZER_TYPES, TrainingSpec, catalog

CASES = [
    {"type": "sgd", "learning_rate": 0.1},
    {"type": "sgd", "learning_rate": 0.1, "momentum": 0.9},
    {"type": "sgd", "learning_rate": 0.1, "momentum": 0.9, "nesterov": True},
    {"type": "adadelta"},
    {"type": "adagrad", "learning_rate": 0.1},
    {"type": "rmsprop", "learning_rate": 0.01},
    {"type": "rmsprop", "learning_rate": 0.01, "momentum": 0.5, "centered": True},
    {"type": "adam", "learning_rate": 0.01},
    {"type": "adam", "learning_rate": 0.01, "epsilon": 0.1},  # where ε sits shows here
    {"type": "adamw", "learning_rate": 0.01, "weight_decay": 0.1},
]
STEPS = 6


def test_every_optimizer_has_a_parity_case_and_its_rule_in_the_catalog():
    assert {case["type"] for case in CASES} == set(OPTIMIZER_TYPES)
    served = {o["type"]: o["update"] for o in catalog()["optimizers"]}
    assert served == OPTIMIZER_UPDATES
    assert "√(G + ε)" in served["adagrad"] and "(√v + ε)" in served["adam"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_torch_and_keras_take_the_same_steps_on_the_same_gradients(case):
    optimizer_spec = TrainingSpec.model_validate({"optimizer": case}).optimizer
    rng = np.random.default_rng(5)
    start = rng.normal(size=(3, 4)).astype(np.float32)
    gradients = rng.normal(size=(STEPS, 3, 4)).astype(np.float32)

    weight = torch.nn.Parameter(torch.from_numpy(start.copy()))
    torch_optimizer = torch_backend.OPTIMIZERS[case["type"]]([weight], optimizer_spec)
    keras = keras_backend.keras
    variable = keras.Variable(start.copy())
    keras_optimizer = keras_backend.OPTIMIZERS[case["type"]](optimizer_spec)
    for gradient in gradients:
        weight.grad = torch.from_numpy(gradient.copy())
        torch_optimizer.step()
        keras_optimizer.apply_gradients([(keras.ops.convert_to_tensor(gradient), variable)])
    moved = weight.detach().numpy()
    assert not np.allclose(moved, start)  # the comparison means something
    np.testing.assert_allclose(moved, keras.ops.convert_to_numpy(variable), rtol=1e-4,
                               atol=1e-5)
