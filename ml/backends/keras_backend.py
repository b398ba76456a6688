"""TensorFlow backend: builds a Keras 3 functional model from a spec and fits it."""

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, SupportsFloat

import numpy as np
import tensorflow as tf  # noqa: E402  (after keras_layers has set the backend)

from ml import spec as S
from ml.artifacts import KERAS_FILE
from ml.backends.interface import CheckpointStore, TrainingData, TrainingHooks
from ml.backends.keras_layers import canonical_variables, keras
from ml.datasets import Preprocessing
from ml.epochs import EpochMetrics
from ml.registry import KERAS

KERAS.objectives.add({
    "categorical_crossentropy": lambda: keras.losses.SparseCategoricalCrossentropy(
        from_logits=True),
    "binary_crossentropy": lambda: keras.losses.BinaryCrossentropy(from_logits=True),
    "mse": lambda: keras.losses.MeanSquaredError(),
    "mae": lambda: keras.losses.MeanAbsoluteError(),
    "huber": lambda: keras.losses.Huber(delta=1.0),
})
# The registry's tables under the names the `Backend` interface gives them.
LAYER_BUILDERS, ACTIVATIONS, COMBINATIONS, LOSSES = (
    KERAS.layers, KERAS.activations, KERAS.combinations, KERAS.objectives)

METRICS = {
    "categorical_crossentropy": lambda: keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
    # On logits: a positive logit is class 1.
    "binary_crossentropy": lambda: keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0),
}

# Every default comes from the spec schema and is passed explicitly (Keras's differ).
OPTIMIZERS = {
    "sgd": lambda o: keras.optimizers.SGD(learning_rate=o.learning_rate, momentum=o.momentum,
                                          nesterov=o.nesterov),
    "adadelta": lambda o: keras.optimizers.Adadelta(learning_rate=o.learning_rate, rho=o.rho,
                                                    epsilon=o.epsilon),
    "adagrad": lambda o: keras.optimizers.Adagrad(
        learning_rate=o.learning_rate, initial_accumulator_value=o.initial_accumulator_value,
        epsilon=o.epsilon),
    "rmsprop": lambda o: keras.optimizers.RMSprop(learning_rate=o.learning_rate, rho=o.rho,
                                                  momentum=o.momentum, epsilon=o.epsilon,
                                                  centered=o.centered),
    "adam": lambda o: keras.optimizers.Adam(learning_rate=o.learning_rate, beta_1=o.beta_1,
                                            beta_2=o.beta_2, epsilon=o.epsilon),
    "adamw": lambda o: keras.optimizers.AdamW(learning_rate=o.learning_rate, beta_1=o.beta_1,
                                              beta_2=o.beta_2, epsilon=o.epsilon,
                                              weight_decay=o.weight_decay),
}


@dataclass
class KerasModel:
    model: keras.Model  # outputs after the last activation
    train_model: keras.Model  # outputs logits when the loss folds the last activation
    layers: list[keras.layers.Layer | None]  # of each spec layer (None: an `activation` layer)
    spec: S.ModelSpec


def threads() -> int:
    """The intra-op threads this process trains with (0: TensorFlow's own choice)."""
    count: int = tf.config.threading.get_intra_op_parallelism_threads()
    return count


def configure(threads: int) -> None:
    # Only possible before TensorFlow's runtime starts; later calls keep the first setting.
    with contextlib.suppress(RuntimeError):
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    for gpu in tf.config.list_physical_devices("GPU"):
        with contextlib.suppress(RuntimeError):
            tf.config.experimental.set_memory_growth(gpu, True)


def build(model_spec: S.ModelSpec) -> KerasModel:
    inputs = keras.Input(shape=tuple(model_spec.input.shape), dtype="float32")
    x, shape, layers, logits = inputs, tuple(model_spec.input.shape), [], None
    for index, layer in enumerate(model_spec.layers):
        keras_layer = KERAS.layers[layer](layer, shape)
        layers.append(keras_layer)
        if keras_layer is not None:
            x = keras_layer(x)
        if index == len(model_spec.layers) - 1:
            logits = x
        activation = layer.output_activation
        if activation not in (None, "identity"):
            x = keras.layers.Activation(KERAS.activations[activation])(x)
        shape = layer.output_shape(shape)
    model = keras.Model(inputs, x)
    train_model = keras.Model(inputs, logits) if model_spec.from_logits else model
    return KerasModel(model=model, train_model=train_model, layers=layers, spec=model_spec)


CHECKPOINT_FILE = "keras.npz"


def _save_checkpoint(model: keras.Model, checkpoints: CheckpointStore, epoch: int) -> None:
    arrays = {f"weight_{i}": w for i, w in enumerate(model.get_weights())}
    arrays.update({f"optimizer_{i}": np.asarray(v.numpy())
                   for i, v in enumerate(model.optimizer.variables)})

    def write(path: Path) -> None:
        with path.open("wb") as handle:
            np.savez(handle, **arrays)

    checkpoints.write(epoch, CHECKPOINT_FILE, write)


def _load_checkpoint(model: keras.Model, checkpoints: CheckpointStore) -> None:
    with np.load(checkpoints.path(CHECKPOINT_FILE), allow_pickle=False) as saved:
        model.set_weights([saved[f"weight_{i}"] for i in range(len(model.weights))])
        model.optimizer.build(model.trainable_variables)
        for i, variable in enumerate(model.optimizer.variables):
            variable.assign(saved[f"optimizer_{i}"])


# A call of Keras's train function costs a millisecond or two of Python besides its steps
# (TensorFlow's function call, Keras's batch callbacks): more than a small model's step. So a
# call may run several steps; but a stop request is seen only between calls, so their
# estimated time must fit in EXECUTION_S, at a modest rate for one CPU thread. And Keras takes
# longer to trace a call of several steps (a loop around the step, for training and for
# validation): about as long as MULTI_STEP_TRACE_CALLS single calls, so a job that would save
# fewer calls than that keeps one step a call.
EXECUTION_S = 0.25
MULTIPLY_ADDS_PER_S = 2e9
MAX_STEPS_PER_EXECUTION = 32
MULTI_STEP_TRACE_CALLS = 250


def steps_per_execution(spec: S.JobSpec, train_rows: int, validation_rows: int,
                        epochs: int) -> int:
    batch_size = spec.training.batch_size
    # Three multiply-adds per weight use and row: the forward pass and two backward.
    step_s = (3 * S.analyze(spec.model).total_multiply_adds * batch_size
              / MULTIPLY_ADDS_PER_S)
    steps = int(min(MAX_STEPS_PER_EXECUTION, max(1, EXECUTION_S // step_s)))

    def calls(rows: int, per_call: int) -> int:
        return math.ceil(math.ceil(rows / batch_size) / per_call)

    saved = epochs * sum(calls(rows, 1) - calls(rows, steps)
                         for rows in (train_rows, validation_rows))
    return steps if saved >= MULTI_STEP_TRACE_CALLS else 1


def _batches(x: np.ndarray, y: np.ndarray, batch_size: int,
             shuffle_seed: int | None = None) -> tf.data.Dataset:
    """One pass over the rows in batches, in a new order each pass when a seed is given.

    Keras's own pipeline for arrays maps a function over shuffled indices, and a mapped
    function costs milliseconds each time an iterator is made; fit makes two a pass, for
    training and for validation, which took more than half of the MLP example's epoch. Slices
    through a shuffle buffer cost a tenth of that, for one more copy of the training rows.
    """
    with tf.device("/CPU:0"):  # tf.data runs on the host; Keras moves each batch to the model
        batches = tf.data.Dataset.from_tensor_slices((x, y))
        if shuffle_seed is not None:
            batches = batches.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
        return batches.batch(batch_size).prefetch(1)


class _Reporter(keras.callbacks.Callback):
    # Batch ends may run on Keras's callback threads, as they do with no batch callback at all.
    # Otherwise Keras turns every call's logs into Python numbers on the training thread
    # before the next call starts: 12 % of the LSTM example's epoch time. A stop request is
    # then seen a call or two later, and `on_epoch_end` runs only after every batch end ran.
    async_safe = True

    def __init__(self, hooks: TrainingHooks, metric: str, samples: int, epochs: int,
                 checkpoints: CheckpointStore | None):
        super().__init__()
        self.hooks, self.samples, self.metric = hooks, samples, metric
        self.epochs, self.checkpoints = epochs, checkpoints
        self.started = 0.0
        self.interrupted = False

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.hooks.should_stop():
            self.model.stop_training = self.interrupted = True

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:

        if self.interrupted:
            return  # stopped within the epoch: an unfinished epoch is neither reported nor kept
        duration = time.perf_counter() - self.started
        logs = logs or {}
        self.hooks.on_epoch_end(EpochMetrics(
            epoch=epoch + 1, loss=float(logs["loss"]), val_loss=_float(logs.get("val_loss")),
            **{self.metric: _float(logs.get(self.metric)),
               f"val_{self.metric}": _float(logs.get(f"val_{self.metric}"))},
            learning_rate=float(keras.ops.convert_to_numpy(
                self.model.optimizer.learning_rate)),
            duration_s=duration, samples_per_s=self.samples / duration,
        ))
        stopping = self.hooks.should_stop()
        if self.checkpoints is not None and self.checkpoints.due(epoch + 1, self.epochs,
                                                                 stopping):
            _save_checkpoint(self.model, self.checkpoints, epoch + 1)
        if stopping:
            self.model.stop_training = True


def _float(value: SupportsFloat | None) -> float | None:
    return None if value is None else float(value)


def fit(spec: S.JobSpec, data: TrainingData, hooks: TrainingHooks, device: str,
        checkpoints: CheckpointStore | None = None) -> tuple[KerasModel, str]:
    start = checkpoints.epoch if checkpoints is not None else 0
    # A resumed run reseeds per resume point: TensorFlow's shuffling state cannot be saved,
    # so resumed epochs shuffle differently from an uninterrupted run (torch's do not).
    seed = spec.training.seed + start
    keras.utils.set_random_seed(seed)
    gpus = tf.config.list_physical_devices("GPU")
    use_gpu = bool(gpus) and device != "cpu"
    metric = METRICS.get(spec.model.objective,
                         lambda: keras.metrics.MeanAbsoluteError(name="mae"))()
    batch_size = spec.training.batch_size
    train = _batches(data.x_train, data.y_train, batch_size, shuffle_seed=seed)
    validation = _batches(data.x_val, data.y_val, batch_size)
    with tf.device("/GPU:0" if use_gpu else "/CPU:0"):
        native = build(spec.model)
        native.train_model.compile(
            optimizer=OPTIMIZERS[spec.training.optimizer.type](spec.training.optimizer),
            loss=KERAS.objectives[spec.model.objective](), metrics=[metric],
            steps_per_execution=steps_per_execution(spec, len(data.x_train), len(data.x_val),
                                                    spec.training.epochs - start))
        if checkpoints is not None and start:
            _load_checkpoint(native.train_model, checkpoints)
        native.train_model.fit(
            train, epochs=spec.training.epochs, initial_epoch=start, validation_data=validation,
            shuffle=False, verbose=0,  # `train` shuffles itself
            callbacks=[_Reporter(hooks, metric.name, len(data.x_train), spec.training.epochs,
                                 checkpoints)],
        )
    return native, "cuda" if use_gpu else "cpu"


def predict(native: KerasModel, x: np.ndarray) -> np.ndarray:
    # Calling the model directly avoids predict()'s per-call dataset setup on small inputs.
    outputs: np.ndarray = keras.ops.convert_to_numpy(native.model(np.asarray(x, np.float32),
                                                                  training=False))
    return outputs


def _variables(native: KerasModel) -> Iterator[tuple[str, keras.Variable]]:
    for index, (layer, keras_layer) in enumerate(zip(native.spec.layers, native.layers,
                                                     strict=True)):
        for name, variable in canonical_variables(layer, keras_layer).items():
            yield f"layers.{index}.{name}", variable


def get_weights(native: KerasModel) -> dict[str, np.ndarray]:
    return {name: np.asarray(variable.numpy(), np.float32) for name, variable in _variables(native)}


def set_weights(native: KerasModel, weights: dict[str, np.ndarray]) -> None:
    for name, variable in _variables(native):
        variable.assign(weights[name])


def library_versions() -> dict[str, str]:
    return {"tensorflow": tf.__version__, "keras": keras.__version__}


def save_native(native: KerasModel, directory: Path,
                preprocessing: Preprocessing) -> tuple[str, ...]:
    """Keras's own format beside the weights, for download only (the service never loads it):
    the model behind a Normalization layer holding the training split's scaling, so that the
    file takes raw inputs as `/predict` does, with Keras's own layers only."""
    shape = tuple(native.spec.input.shape)
    inputs = keras.Input(shape, name="raw_input")
    # x' = (x - shift) / scale, each value of the input by its own statistics
    scaling = keras.layers.Normalization(axis=tuple(range(-len(shape), 0)),
                                         mean=preprocessing.shift,
                                         variance=np.square(preprocessing.scale),
                                         name="preprocessing")
    keras.Model(inputs, native.model(scaling(inputs)), name=native.model.name).save(
        directory / KERAS_FILE)
    return (KERAS_FILE,)
