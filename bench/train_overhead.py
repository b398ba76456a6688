"""Training overhead: a Capas job against the same training in a plain framework script.

For each framework, the MLP, CNN and LSTM examples (same spec, data split, seed, batch size)
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
        "lstm-sine.json": (5, 12, 20)}
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
    else:
        model = nn.Sequential(LastStep(), nn.Linear(32, 1))
        optimizer = torch.optim.RMSprop(model.parameters(), lr=o.learning_rate, alpha=o.rho)
        plain_torch_loop(model, optimizer, nn.functional.mse_loss, spec, data, lambda x: x,
                         classify=False)


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
    else:
        layers = [keras.Input((20, 1)), keras.layers.LSTM(32), keras.layers.Dense(1)]
        optimizer = keras.optimizers.RMSprop(o.learning_rate)
    model = keras.Sequential(layers)
    if spec.model.task == "classification":
        model.compile(optimizer=optimizer, metrics=["accuracy"],
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    else:
        model.compile(optimizer=optimizer, loss="mse", metrics=["mae"])
    model.fit(data.x_train, data.y_train, batch_size=spec.training.batch_size,
              epochs=spec.training.epochs, validation_data=(data.x_val, data.y_val), verbose=0)


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
    print(f"{'example':<16} {'framework':<11} {'epochs':>6} {'plain':>7} {'capas':>7} "
          f"{'budget':>7} {'steps/call':>10}  verdict")
    for example, framework, plain_points, capas_points, steps, _, _ in rows:
        for (epochs, plain), (_, capas), step in zip(plain_points, capas_points, steps,
                                                     strict=True):
            budget = PER_EPOCH_RATIO * plain + FIXED_S
            verdict = "within" if capas <= budget else "OVER"
            print(f"{example:<16} {framework:<11} {epochs:>6} {plain:>7.3f} {capas:>7.3f} "
                  f"{budget:>7.3f} {step:>10}  {verdict} ({capas - budget:+.3f} s)")
    for example, framework, _, _, steps, ratio, fixed in rows:
        # Points trained at different steps a call lie on different lines.
        caveat = "" if len(set(steps)) == 1 else " (mixes steps a call: not one line)"
        print(f"{example:<16} {framework:<11} line fit: per-epoch ratio {ratio:.3f}, "
              f"fixed per-job cost {fixed:+.3f} s{caveat}")


if __name__ == "__main__":
    main()
