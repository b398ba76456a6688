"""A published model in plain PyTorch code: rebuilt from its card and downloaded weights, it
gives on raw inputs what `/predict` answers, whichever framework trained it."""

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from sklearn.datasets import load_iris

from capas.client import Client
from core.services.training import TrainingService
from tests.conftest import tiny_job


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_the_torch_model_of_a_version_predicts_as_the_service(api, framework):
    job = api.post("/jobs", json=tiny_job(framework, epochs=2, name=f"native-{framework}"))
    TrainingService(api.settings).run(job.json()["id"], "unit-worker")
    done = api.get(f"/jobs/{job.json()['id']}").json()
    assert done["status"] == "succeeded", done["failure_reason"]
    raw = load_iris().data[::10].astype(np.float32)  # raw features, as /predict takes them
    served = api.post(f"/models/native-{framework}/predict",
                      json={"instances": raw.tolist()}).json()
    client = Client(url="http://testserver")
    client.http = TestClient(api.app, headers=api.headers)
    module = client.torch_model(f"native-{framework}", done["model_version"])
    assert isinstance(module, torch.nn.Module) and not module.training
    with torch.no_grad():
        outputs = module(torch.from_numpy(raw)).numpy()
    np.testing.assert_allclose(outputs, served["probabilities"], atol=1e-5)
