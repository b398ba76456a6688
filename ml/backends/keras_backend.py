"""TensorFlow backend: builds a Keras 3 functional model from a spec and fits it.

Each spec layer becomes its weight-bearing Keras layer followed by a separate Activation
layer, so the logits of the last layer are one tensor away and the canonical weights map
one-to-one onto Keras variables.
"""

import contextlib
import os
import time
from dataclasses import dataclass

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from ml import spec as S  # noqa: E402

ACTIVATIONS = {
    "identity": None,
    "relu": "relu",
    "tanh": "tanh",
    "logistic": "sigmoid",
    "softmax": "softmax",
}


def _dense(layer: S.Dense, in_shape: S.Shape) -> keras.layers.Layer:
    return keras.layers.Dense(layer.units, use_bias=layer.use_bias,
                              kernel_initializer=layer.kernel_initializer,
                              bias_initializer=layer.bias_initializer)


LAYER_BUILDERS = {
    "dense": _dense,
    "dropout": lambda layer, in_shape: keras.layers.Dropout(layer.rate),
    "flatten": lambda layer, in_shape: keras.layers.Flatten(),
}

LOSSES = {
    "categorical_crossentropy": lambda: keras.losses.SparseCategoricalCrossentropy(
        from_logits=True),
    "binary_crossentropy": lambda: keras.losses.BinaryCrossentropy(from_logits=True),
    "mse": lambda: keras.losses.MeanSquaredError(),
}

METRICS = {
    "categorical_crossentropy": lambda: keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
    # On logits: a positive logit is class 1.
    "binary_crossentropy": lambda: keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0),
    "mse": lambda: keras.metrics.MeanAbsoluteError(name="mae"),
}

# Every default comes from the spec schema and is passed explicitly (Keras's differ).
OPTIMIZERS = {
    "sgd": lambda o: keras.optimizers.SGD(learning_rate=o.learning_rate, momentum=o.momentum,
                                          nesterov=o.nesterov),
    "adam": lambda o: keras.optimizers.Adam(learning_rate=o.learning_rate, beta_1=o.beta_1,
                                            beta_2=o.beta_2, epsilon=o.epsilon),
}


@dataclass
class KerasModel:
    model: keras.Model  # outputs after the last activation
    train_model: keras.Model  # outputs logits when the loss folds the last activation
    weight_layers: list[keras.layers.Layer]  # one per spec layer


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
    x, shape, weight_layers = inputs, tuple(model_spec.input.shape), []
    logits = None
    for index, layer in enumerate(model_spec.layers):
        keras_layer = LAYER_BUILDERS[layer.type](layer, shape)
        weight_layers.append(keras_layer)
        x = keras_layer(x)
        activation = ACTIVATIONS.get(layer.output_activation or "identity")
        if index == len(model_spec.layers) - 1:
            logits = x
        if activation is not None:
            x = keras.layers.Activation(activation)(x)
        shape = layer.output_shape(shape)
    model = keras.Model(inputs, x)
    train_model = keras.Model(inputs, logits) if model_spec.from_logits else model
    return KerasModel(model=model, train_model=train_model, weight_layers=weight_layers)


class _Reporter(keras.callbacks.Callback):
    def __init__(self, hooks, objective: str, samples: int):
        super().__init__()
        self.hooks, self.samples = hooks, samples
        self.metric = "mae" if objective == "mse" else "accuracy"
        self.started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.hooks.should_stop():
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        from ml.training import EpochMetrics

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
        if self.hooks.should_stop():
            self.model.stop_training = True


def _float(value) -> float | None:
    return None if value is None else float(value)


def fit(spec: S.JobSpec, data, hooks, device: str) -> tuple[KerasModel, str]:
    keras.utils.set_random_seed(spec.training.seed)
    gpus = tf.config.list_physical_devices("GPU")
    use_gpu = bool(gpus) and device != "cpu"
    with tf.device("/GPU:0" if use_gpu else "/CPU:0"):
        native = build(spec.model)
        native.train_model.compile(
            optimizer=OPTIMIZERS[spec.training.optimizer.type](spec.training.optimizer),
            loss=LOSSES[spec.model.objective](),
            metrics=[METRICS[spec.model.objective]()],
        )
        native.train_model.fit(
            data.x_train, data.y_train, batch_size=spec.training.batch_size,
            epochs=spec.training.epochs, validation_data=(data.x_val, data.y_val),
            shuffle=True, verbose=0,
            callbacks=[_Reporter(hooks, spec.model.objective, len(data.x_train))],
        )
    return native, "cuda" if use_gpu else "cpu"


def predict(native: KerasModel, x: np.ndarray) -> np.ndarray:
    # Calling the model directly avoids predict()'s per-call dataset setup on small inputs.
    return keras.ops.convert_to_numpy(native.model(np.asarray(x, np.float32), training=False))


def _canonical_names(layer: keras.layers.Layer) -> list[str]:
    # Keras variable names within a layer ("kernel", "bias") are the canonical names.
    return [variable.path.rsplit("/", 1)[-1] for variable in layer.weights]


def get_weights(native: KerasModel) -> dict[str, np.ndarray]:
    return {f"layers.{i}.{name}": np.asarray(value, np.float32)
            for i, layer in enumerate(native.weight_layers)
            for name, value in zip(_canonical_names(layer), layer.get_weights(), strict=True)}


def set_weights(native: KerasModel, weights: dict[str, np.ndarray]) -> None:
    for i, layer in enumerate(native.weight_layers):
        names = _canonical_names(layer)
        if names:
            layer.set_weights([weights[f"layers.{i}.{name}"] for name in names])
