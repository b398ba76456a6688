"""A `.keras` download works on its own: plain Keras, in a Python that imports nothing of
Capas, loads it in safe mode, and on raw inputs it gives what `/predict` answers (the
training split's scaling is its first layer)."""

import json
import subprocess
import sys

import numpy as np
from sklearn.datasets import load_iris

from core.services.training import TrainingService

# Run in a fresh interpreter: only Keras is imported, then nothing of Capas may be loaded.
LOAD = """
import json, sys
import numpy as np
import keras
model = keras.saving.load_model(sys.argv[1], safe_mode=True)
raw = np.asarray(json.loads(sys.argv[2]), np.float32)
assert not any(name.split(".")[0] in ("ml", "capas", "core") for name in sys.modules)
print(json.dumps(keras.ops.convert_to_numpy(model.predict(raw, verbose=0)).tolist()))
"""


def test_a_keras_file_predicts_raw_inputs_in_plain_keras(api, tmp_path):
    job = {"model": {"name": "plain-iris", "input": {"shape": [4]},
                     "layers": [{"type": "dense", "units": 8, "activation": "relu"},
                                {"type": "dense", "units": 3, "activation": "softmax"}],
                     "objective": "categorical_crossentropy"},
           "training": {"epochs": 3, "batch_size": 16, "seed": 2},
           "dataset": "builtin:iris", "framework": "tensorflow"}
    submitted = api.post("/jobs", json=job).json()
    TrainingService(api.settings).run(submitted["id"], "unit-worker")
    version = api.get(f"/jobs/{submitted['id']}").json()["model_version"]
    keras_file = tmp_path / "plain-iris.keras"
    keras_file.write_bytes(api.get(f"/models/plain-iris/versions/{version}/artifacts/keras")
                           .content)
    raw = load_iris().data[::15].tolist()  # centimetres, as measured: no scaling by the caller
    loaded = subprocess.run([sys.executable, "-P", "-c", LOAD, str(keras_file), json.dumps(raw)],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    served = api.post("/models/plain-iris/predict", json={"instances": raw}).json()
    np.testing.assert_allclose(json.loads(loaded.stdout.splitlines()[-1]),
                               served["probabilities"], atol=1e-5)
