"""ONNX Runtime predictor: loads a published model's export and checks request instances.

Imports neither framework, so the API can serve without TensorFlow or torch.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ml.onnx_export import INPUT_NAME, OUTPUT_NAME


class InstanceError(ValueError):
    def __init__(self, index: int, message: str):
        self.index = index
        super().__init__(f"instances[{index}]: {message}")


def to_batch(instances: list, input_shape: list[int]) -> np.ndarray:
    """Turn JSON instances into a float32 batch, naming the first bad instance.

    An instance may be given in the input's shape or flat with the same number of values.
    """
    size = math.prod(input_shape)
    rows = []
    for index, instance in enumerate(instances):
        try:
            array = np.asarray(instance, dtype=np.float32)
        except (ValueError, TypeError):
            raise InstanceError(index, f"expected numbers in shape {input_shape}, received "
                                       f"{_preview(instance)}") from None
        if array.dtype == object or array.size != size:
            raise InstanceError(index, f"expected {size} values in shape {input_shape}, "
                                       f"received {array.size} ({_preview(instance)})")
        if not np.all(np.isfinite(array)):
            raise InstanceError(index, "contains NaN or infinite values")
        rows.append(array.reshape(input_shape))
    return np.stack(rows)


def _preview(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass
class Predictor:
    session: ort.InferenceSession

    @classmethod
    def load(cls, onnx_path: Path, threads: int = 1) -> "Predictor":
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        return cls(ort.InferenceSession(str(onnx_path), options,
                                        providers=["CPUExecutionProvider"]))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
