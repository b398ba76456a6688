"""Training overhead: a Capas job against the same training in a plain framework script.

For each framework, the MLP example (same spec, data split, seed, batch size) is trained at
two epoch counts by a plain script and as a Capas job (submit → succeeded). A line through
the times separates the per-epoch cost from the fixed per-job cost:
    ratio = Capas seconds per epoch / plain seconds per epoch      (target ≤ 1.05)
    fixed = Capas fixed seconds − plain fixed seconds                (target ≤ 0.5 s)
Run: `make bench` (or `.venv/bin/python bench/train_overhead.py [--repeats N]`).
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

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "mlp-digits.json"
EPOCHS = (10, 40)


def plain_pytorch(spec, data) -> None:
    """What a student would write by hand: the same layers and loop, reporting what Keras's
    fit and a Capas job report each epoch (training loss and accuracy, validation loss and
    accuracy), so the comparison measures Capas's overhead, not extra metrics."""
    from torch import nn

    torch.manual_seed(spec.training.seed)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 64),
                          nn.Tanh(), nn.Linear(64, 10))
    o = spec.training.optimizer
    optimizer = torch.optim.Adam(model.parameters(), lr=o.learning_rate,
                                 betas=(o.beta_1, o.beta_2), eps=o.epsilon)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    x_val, y_val = torch.from_numpy(data.x_val), torch.from_numpy(data.y_val)
    for _ in range(spec.training.epochs):
        model.train()
        loss_sum, correct = torch.zeros(()), torch.zeros(())
        for index in torch.randperm(len(x)).split(spec.training.batch_size):
            logits = model(x[index])
            loss = nn.functional.cross_entropy(logits, y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                loss_sum += loss * len(index)
                correct += (logits.argmax(dim=-1) == y[index]).sum()
        model.eval()
        with torch.no_grad():
            val_logits = model(x_val)
            float(nn.functional.cross_entropy(val_logits, y_val))
            float((val_logits.argmax(dim=-1) == y_val).float().mean())
        float(loss_sum / len(x)), float(correct / len(x))


def plain_keras(spec, data) -> None:
    import keras

    keras.utils.set_random_seed(spec.training.seed)
    model = keras.Sequential([
        keras.Input((64,)), keras.layers.Dense(128, activation="relu"),
        keras.layers.Dropout(0.2), keras.layers.Dense(64, activation="tanh"),
        keras.layers.Dense(10),
    ])
    model.compile(optimizer=keras.optimizers.Adam(spec.training.optimizer.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(data.x_train, data.y_train, batch_size=spec.training.batch_size,
              epochs=spec.training.epochs, validation_data=(data.x_val, data.y_val), verbose=0)


PLAIN = {"pytorch": plain_pytorch, "tensorflow": plain_keras}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    threads = Settings().torch_threads  # the workers' thread count, for a fair comparison
    torch.set_num_threads(threads)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    base = json.loads(EXAMPLE.read_text())
    results = {}
    with embedded_service() as client:
        for framework in ("pytorch", "tensorflow"):
            body = copy.deepcopy(base)
            body["framework"] = framework
            body["training"]["epochs"] = 2
            run_job(client, body)  # warm the worker: framework imported once, then kept
            plain_points, capas_points = [], []
            for epochs in EPOCHS:
                body["training"]["epochs"] = epochs
                spec = parse_job_spec(body)
                data = prepare(spec, load_builtin(spec.dataset))
                plain, capas = [], []
                for _ in range(args.repeats):
                    started = time.perf_counter()
                    PLAIN[framework](spec, data)
                    plain.append(time.perf_counter() - started)
                    capas.append(job_seconds(run_job(client, body)))
                plain_points.append((epochs, statistics.median(plain)))
                capas_points.append((epochs, statistics.median(capas)))
            plain_slope, plain_fixed = fit_line(plain_points)
            capas_slope, capas_fixed = fit_line(capas_points)
            results[framework] = {
                "plain_s": dict(plain_points), "capas_s": dict(capas_points),
                "ratio_per_epoch": capas_slope / plain_slope,
                "fixed_cost_s": capas_fixed - plain_fixed,
            }
    print(f"threads={threads}, epochs={EPOCHS}, median of {args.repeats}")
    print(f"{'framework':<11} {'epochs':>6} {'plain s':>8} {'capas s':>8}")
    for framework, r in results.items():
        for epochs in EPOCHS:
            print(f"{framework:<11} {epochs:>6} {r['plain_s'][epochs]:>8.3f} "
                  f"{r['capas_s'][epochs]:>8.3f}")
    for framework, r in results.items():
        print(f"{framework}: per-epoch ratio {r['ratio_per_epoch']:.3f} (target ≤ 1.05), "
              f"fixed per-job cost {r['fixed_cost_s']:+.3f} s (target ≤ 0.5 s)")


if __name__ == "__main__":
    main()
