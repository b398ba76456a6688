"""Training overhead: a Capas job against the same training in a plain framework script.

For each framework, the MLP, CNN and LSTM examples and the sequence ones (seq2seq, CNN → LSTM,
transformer encoder) (same spec, data split, seed, batch size)
are trained at three epoch counts by a plain script and as a Capas job (submit → succeeded),
the two alternating, the median of `--repeats` runs kept. The target,
    Capas seconds ≤ 1.05 × plain seconds + 0.5 s      (per-epoch ratio ≤ 1.05, fixed cost ≤ 0.5 s)
is checked at every epoch count. A line through the three medians estimates the two parts
separately (ratio of slopes, difference of intercepts); on a shared two-core machine a run
varies by 5 to 10 %, so these estimates are as noisy as a difference of two such times.
Run: `make bench` (or `.venv/bin/python bench/train_overhead.py [--repeats N]
[--examples FILE ...] [--frameworks pytorch|tensorflow ...]`).
"""

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402  (torch before TensorFlow, as in the workers)

from bench.common import embedded_service, fit_line, job_seconds, run_job  # noqa: E402
from core.settings import Settings  # noqa: E402
from ml.datasets import load_builtin  # noqa: E402
from ml.spec import parse_job_spec  # noqa: E402
from ml.training import prepare  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# example → the epoch counts it is trained for
RUNS = {"mlp-digits.json": (10, 25, 40), "cnn-digits.json": (5, 12, 20),
        "lstm-sine.json": (5, 12, 20), "seq2seq-reverse.json": (5, 12, 20),
        "cnn-lstm-digit-sequences.json": (3, 6, 10),
        "transformer-digit-sequences.json": (3, 6, 10)}
PER_EPOCH_RATIO, FIXED_S = 1.05, 0.5  # the target


def plain_torch_loop(model, optimizer, loss_fn, spec, data, to_input, classify: bool) -> None:
    """What a student would write by hand: the loop, reporting what Keras's fit and a Capas
    job report each epoch (training loss and accuracy or MAE, the same on validation), so the
    comparison measures Capas's overhead, not extra metrics."""
    x, y = to_input(torch.from_numpy(data.x_train)), torch.from_numpy(data.y_train)
    x_val, y_val = to_input(torch.from_numpy(data.x_val)), torch.from_numpy(data.y_val)

    def metric(out, target):
        return ((out.argmax(dim=-1) == target).sum() if classify
                else (out - target).abs().sum())

    for _ in range(spec.training.epochs):
        model.train()
        loss_sum, metric_sum = torch.zeros(()), torch.zeros(())
        for index in torch.randperm(len(x)).split(spec.training.batch_size):
            out = model(x[index])
            loss = loss_fn(out, y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                loss_sum += loss * len(index)
                metric_sum += metric(out, y[index])
        model.eval()
        with torch.no_grad():
            val_out = model(x_val)
            float(loss_fn(val_out, y_val)), float(metric(val_out, y_val))
        float(loss_sum / len(x)), float(metric_sum / len(x))


class Elliott(torch.nn.Module):
    def forward(self, x):
        return x / (1 + x.abs())


class LastStep(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(1, 32, batch_first=True)

    def forward(self, x):
        return self.lstm(x)[1][0][-1]


class Seq2Seq(torch.nn.Module):
    """Embedding, LSTM encoder, its last state repeated, LSTM decoder, a dense head per step."""

    def __init__(self):
        super().__init__()
        self.embedding = torch.nn.Embedding(10, 8)
        self.encoder = torch.nn.LSTM(8, 64, batch_first=True)
        self.decoder = torch.nn.LSTM(64, 64, batch_first=True)
        self.head = torch.nn.Linear(64, 10)

    def forward(self, x):  # [n, steps] ids
        state = self.encoder(self.embedding(x.long()))[1][0][-1]  # [n, 64]
        return self.head(self.decoder(state[:, None].expand(-1, x.shape[1], -1))[0])


class FramesThenLSTM(torch.nn.Module):
    """A CNN on every frame (folded into the batch), an LSTM over the frames' features."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.frame = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                   nn.Flatten(), nn.Linear(128, 32), nn.ReLU())
        self.lstm = nn.LSTM(32, 32, batch_first=True)
        self.head = nn.Linear(32, 10)

    def forward(self, x):  # [n, steps, 8, 8, 1]
        n, steps = x.shape[:2]
        frames = self.frame(x.reshape(n * steps, 8, 8, 1).permute(0, 3, 1, 2))
        return self.head(self.lstm(frames.reshape(n, steps, -1))[1][0][-1])


class Encoder(torch.nn.Module):
    """Dense projection, learned positions, residual attention and dense, layernorms, pooling."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.project = nn.Linear(64, 32)
        self.positions = nn.Parameter(torch.zeros(3, 32).uniform_(-0.05, 0.05))
        self.attention = nn.MultiheadAttention(32, 4, batch_first=True)
        self.norm1, self.norm2 = nn.LayerNorm(32, eps=1e-3), nn.LayerNorm(32, eps=1e-3)
        self.feed = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 32))
        self.head = nn.Linear(32, 10)

    def forward(self, x):  # [n, 3, 64]
        x = torch.relu(self.project(x)) + self.positions
        x = self.norm1(x + self.attention(x, x, x, need_weights=False)[0])
        x = self.norm2(x + self.feed(x))
        return self.head(x.mean(dim=1))


def _steps_cross_entropy(out, y):
    return torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


def plain_pytorch(example: str, spec, data) -> None:
    from torch import nn

    torch.manual_seed(spec.training.seed)
    o = spec.training.optimizer
    if example == "mlp-digits.json":
        model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.2),
                              nn.Linear(128, 64), nn.Tanh(), nn.Linear(64, 10))
        optimizer = torch.optim.Adam(model.parameters(), lr=o.learning_rate,
                                     betas=(o.beta_1, o.beta_2), eps=o.epsilon)
        plain_torch_loop(model, optimizer, nn.functional.cross_entropy, spec, data,
                         lambda x: x, classify=True)
    elif example == "cnn-digits.json":
        model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
                              nn.BatchNorm2d(16, momentum=0.01, eps=1e-3), nn.MaxPool2d(2),
                              nn.Dropout(0.25), nn.Flatten(), nn.Linear(256, 64), Elliott(),
                              nn.Linear(64, 10))
        optimizer = torch.optim.SGD(model.parameters(), lr=o.learning_rate, momentum=o.momentum)
        plain_torch_loop(model, optimizer, nn.functional.cross_entropy, spec, data,
                         lambda x: x.permute(0, 3, 1, 2).contiguous(), classify=True)
    elif example == "lstm-sine.json":
        model = nn.Sequential(LastStep(), nn.Linear(32, 1))
        optimizer = torch.optim.RMSprop(model.parameters(), lr=o.learning_rate, alpha=o.rho)
        plain_torch_loop(model, optimizer, nn.functional.mse_loss, spec, data, lambda x: x,
                         classify=False)
    else:
        model = {"seq2seq-reverse.json": Seq2Seq, "cnn-lstm-digit-sequences.json": FramesThenLSTM,
                 "transformer-digit-sequences.json": Encoder}[example]()
        optimizer = torch.optim.Adam(model.parameters(), lr=o.learning_rate,
                                     betas=(o.beta_1, o.beta_2), eps=o.epsilon)
        plain_torch_loop(model, optimizer, _steps_cross_entropy, spec, data, lambda x: x,
                         classify=True)


def plain_keras(example: str, spec, data) -> None:
    import keras

    keras.utils.set_random_seed(spec.training.seed)
    o = spec.training.optimizer
    if example == "mlp-digits.json":
        layers = [keras.Input((64,)), keras.layers.Dense(128, activation="relu"),
                  keras.layers.Dropout(0.2), keras.layers.Dense(64, activation="tanh"),
                  keras.layers.Dense(10)]
        optimizer = keras.optimizers.Adam(o.learning_rate)
    elif example == "cnn-digits.json":
        layers = [keras.Input((8, 8, 1)),
                  keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
                  keras.layers.BatchNormalization(), keras.layers.MaxPooling2D(2),
                  keras.layers.Dropout(0.25), keras.layers.Flatten(),
                  keras.layers.Dense(64, activation=lambda g: g / (1 + keras.ops.abs(g))),
                  keras.layers.Dense(10)]
        optimizer = keras.optimizers.SGD(o.learning_rate, momentum=o.momentum)
    elif example == "lstm-sine.json":
        layers = [keras.Input((20, 1)), keras.layers.LSTM(32), keras.layers.Dense(1)]
        optimizer = keras.optimizers.RMSprop(o.learning_rate)
    elif example == "seq2seq-reverse.json":
        layers = [keras.Input((6,)), keras.layers.Embedding(10, 8), keras.layers.LSTM(64),
                  keras.layers.RepeatVector(6), keras.layers.LSTM(64, return_sequences=True),
                  keras.layers.TimeDistributed(keras.layers.Dense(10))]
        optimizer = keras.optimizers.Adam(o.learning_rate)
    elif example == "cnn-lstm-digit-sequences.json":
        frame = keras.Sequential([keras.Input((8, 8, 1)),
                                  keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
                                  keras.layers.MaxPooling2D(2), keras.layers.Flatten(),
                                  keras.layers.Dense(32, activation="relu")])
        layers = [keras.Input((3, 8, 8, 1)), keras.layers.TimeDistributed(frame),
                  keras.layers.LSTM(32), keras.layers.Dense(10)]
        optimizer = keras.optimizers.Adam(o.learning_rate)
    else:
        layers = None
        optimizer = keras.optimizers.Adam(o.learning_rate)
    model = keras.Sequential(layers) if layers else _keras_encoder(keras)
    if spec.model.task == "classification":
        model.compile(optimizer=optimizer, metrics=["accuracy"],
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    else:
        model.compile(optimizer=optimizer, loss="mse", metrics=["mae"])
    model.fit(data.x_train, data.y_train, batch_size=spec.training.batch_size,
              epochs=spec.training.epochs, validation_data=(data.x_val, data.y_val), verbose=0)


def _keras_encoder(keras):
    """The transformer example's encoder block, as a Keras user writes it."""

    class Positions(keras.layers.Layer):
        def build(self, shape):
            self.table = self.add_weight(shape=shape[1:], initializer="random_uniform")

        def call(self, x):
            return x + self.table

    inputs = keras.Input((3, 64))
    x = Positions()(keras.layers.Dense(32, activation="relu")(inputs))
    x = keras.layers.LayerNormalization(epsilon=1e-3)(
        x + keras.layers.MultiHeadAttention(num_heads=4, key_dim=8)(x, x))
    feed = keras.layers.Dense(32)(keras.layers.Dense(64, activation="relu")(x))
    x = keras.layers.LayerNormalization(epsilon=1e-3)(x + feed)
    outputs = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling1D()(x))
    return keras.Model(inputs, outputs)


PLAIN = {"pytorch": plain_pytorch, "tensorflow": plain_keras}


def steps_a_call(framework: str, spec, data) -> int:
    """Batches the job runs per call of the framework's step: several for Keras when it pays."""
    if framework == "pytorch":
        return 1
    from ml.backends.keras_backend import steps_per_execution

    return steps_per_execution(spec, len(data.x_train), len(data.x_val), spec.training.epochs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--examples", nargs="*", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--frameworks", nargs="*", default=list(PLAIN), choices=list(PLAIN))
    args = parser.parse_args()

    threads = Settings().torch_threads  # the workers' thread count, for a fair comparison
    torch.set_num_threads(threads)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    rows = []
    with embedded_service() as client:
        for example in args.examples:
            base = json.loads((EXAMPLES / example).read_text())
            for framework in args.frameworks:
                body = copy.deepcopy(base)
                body["framework"] = framework
                body["training"]["epochs"] = 1
                # Warm both sides: the worker imports its framework once and keeps it; this
                # process's first run of a framework pays its own start-up likewise.
                run_job(client, body)
                warm = parse_job_spec(body)
                PLAIN[framework](example, warm, prepare(warm, load_builtin(warm.dataset)))
                plain_points, capas_points, calls = [], [], []
                for epochs in RUNS[example]:
                    body["training"]["epochs"] = epochs
                    spec = parse_job_spec(body)
                    data = prepare(spec, load_builtin(spec.dataset))
                    plain, capas = [], []
                    for _ in range(args.repeats):
                        started = time.perf_counter()
                        PLAIN[framework](example, spec, data)
                        plain.append(time.perf_counter() - started)
                        capas.append(job_seconds(run_job(client, body)))
                    plain_points.append((epochs, statistics.median(plain)))
                    capas_points.append((epochs, statistics.median(capas)))
                    calls.append(steps_a_call(framework, spec, data))
                plain_slope, plain_fixed = fit_line(plain_points)
                capas_slope, capas_fixed = fit_line(capas_points)
                rows.append((example, framework, plain_points, capas_points, calls,
                             capas_slope / plain_slope, capas_fixed - plain_fixed))
    print(f"threads={threads}, median of {args.repeats}; times in seconds, submit → succeeded "
          f"for Capas; budget = {PER_EPOCH_RATIO} × plain + {FIXED_S}")
    width = max(map(len, args.examples))
    print(f"{'example':<{width}} {'framework':<11} {'epochs':>6} {'plain':>7} {'capas':>7} "
          f"{'budget':>7} {'steps/call':>10}  verdict")
    for example, framework, plain_points, capas_points, steps, _, _ in rows:
        for (epochs, plain), (_, capas), step in zip(plain_points, capas_points, steps,
                                                     strict=True):
            budget = PER_EPOCH_RATIO * plain + FIXED_S
            verdict = "within" if capas <= budget else "OVER"
            print(f"{example:<{width}} {framework:<11} {epochs:>6} {plain:>7.3f} {capas:>7.3f} "
                  f"{budget:>7.3f} {step:>10}  {verdict} ({capas - budget:+.3f} s)")
    for example, framework, _, _, steps, ratio, fixed in rows:
        # Points trained at different steps a call lie on different lines.
        caveat = "" if len(set(steps)) == 1 else " (mixes steps a call: not one line)"
        print(f"{example:<{width}} {framework:<11} line fit: per-epoch ratio {ratio:.3f}, "
              f"fixed per-job cost {fixed:+.3f} s{caveat}")


if __name__ == "__main__":
    main()
