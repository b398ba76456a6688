"""The training coach: what went wrong in a run, read from its per-epoch rows, in plain words."""

import math
from collections.abc import Mapping, Sequence
from typing import Any

# Accuracy that closes less than this share of the gap between always answering the majority
# class and always being right: the model learned next to nothing a constant guess would not.
CHANCE_SHARE_OF_GAP = 0.1
# Chance level and a constant guess's loss are judged on the mean of the last epochs, whose
# values jump from one to the next.
LAST_EPOCHS = 3
# A training loss ending this many times above what guessing the class shares gets is no
# slow start but a blow-up.
GUESS_LOSS_FACTOR = 2.0
# Validation loss rising this many epochs in a row while the training loss falls: overfitting.
OVERFIT_EPOCHS = 3

# The catalog entries that help with each flag: (section of `GET /catalog`, entry, label).
HELP: dict[str, list[tuple[str, str, str]]] = {
    "diverged": [("training", "learning_rate", "learning rate"),
                 ("optimizers", "adam", "optimizers"),
                 ("layers", "batchnorm", "batch normalization")],
    "chance": [("training", "learning_rate", "learning rate"),
               ("optimizers", "adam", "optimizers"),
               ("layers", "batchnorm", "batch normalization")],
    "overfit": [("layers", "dropout", "dropout"),
                ("training", "early_stopping", "early stopping"),
                ("training", "learning_rate", "learning rate")],
}


def _flag(code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message,
            "links": [{"section": section, "name": name, "label": label}
                      for section, name, label in HELP[code]]}


def _values(rows: Sequence[Mapping[str, Any]], field: str) -> list[tuple[int, float]]:
    return [(int(row["epoch"]), float(row[field])) for row in rows
            if row.get(field) is not None]


def _shares(class_counts: Sequence[int] | None) -> list[float] | None:
    total = sum(class_counts or [])
    return [count / total for count in class_counts or []] if total else None


def _last_mean(values: list[tuple[int, float]]) -> float:
    last = [value for _, value in values[-LAST_EPOCHS:]]
    return sum(last) / len(last)


def _diverged(rows: Sequence[Mapping[str, Any]],
              class_counts: Sequence[int] | None) -> dict[str, Any] | None:
    losses = _values(rows, "loss")
    broken = next(((epoch, loss) for epoch, loss in losses if not math.isfinite(loss)), None)
    if broken is not None:
        return _flag("diverged", f"Diverged: the training loss became {broken[1]} at epoch "
                                 f"{broken[0]}. Lower the learning rate.")
    if len(losses) >= 2 and losses[-1][1] > losses[0][1]:
        return _flag("diverged", f"Diverged: the training loss ended at {losses[-1][1]:,.6g}, "
                                 f"above its first value {losses[0][1]:,.4g}. The learning rate "
                                 "is probably too high.")
    shares = _shares(class_counts)
    if shares and losses:
        # Cross-entropy of always answering the class shares: a loss far above it at the end is
        # far worse than guessing, even when the first epoch already blew up (its value with it).
        guess = -sum(p * math.log(p) for p in shares if p > 0)
        final = _last_mean(losses)
        if final > GUESS_LOSS_FACTOR * guess:
            return _flag("diverged", f"Diverged: the training loss of the last epochs, "
                                     f"{final:,.6g} on average, is far above the {guess:.3g} "
                                     "that guessing the class shares gets. The learning rate "
                                     "is probably too high.")
    return None


def _chance(rows: Sequence[Mapping[str, Any]],
            class_counts: Sequence[int] | None) -> dict[str, Any] | None:
    shares = _shares(class_counts)
    if not shares:
        return None  # regression, or no classes known
    # The training accuracy, averaged over every batch, is the steadier: a model at chance there
    # learned nothing at all.
    field = "accuracy" if any(r.get("accuracy") is not None for r in rows) else "val_accuracy"
    accuracies = [(e, a) for e, a in _values(rows, field) if math.isfinite(a)]
    if not accuracies:
        return None
    majority = max(shares)
    accuracy = _last_mean(accuracies)
    if accuracy - majority > CHANCE_SHARE_OF_GAP * (1 - majority):
        return None
    split = "training" if field == "accuracy" else "validation"
    return _flag("chance", f"Stayed at chance level: the {split} accuracy of the last "
                           f"epochs, {accuracy:.1%} on average, is about what always answering "
                           f"the most common class gets ({majority:.1%}). The network learned "
                           "next to nothing.")


def _overfit(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    pairs = [(int(r["epoch"]), float(r["loss"]), float(r["val_loss"])) for r in rows
             if r.get("loss") is not None and r.get("val_loss") is not None]
    start = 0  # index where the current run of rising validation losses began
    for index in range(1, len(pairs)):
        if not pairs[index][2] > pairs[index - 1][2]:
            start = index
            continue
        if index - start >= OVERFIT_EPOCHS and pairs[index][1] < pairs[start][1]:
            first, last = pairs[start][0], pairs[index][0]
            return _flag("overfit", f"Overfitting: from epoch {first} to {last} the validation "
                                    f"loss rose ({pairs[start][2]:,.4g} → {pairs[index][2]:,.4g}) "
                                    f"while the training loss fell ({pairs[start][1]:,.4g} → "
                                    f"{pairs[index][1]:,.4g}). Add dropout, stop earlier or "
                                    "train on more data.")
    return None


def coach(rows: Sequence[Mapping[str, Any]],
          class_counts: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """The flags of a run, each `{"code", "message", "links"}`: "diverged", "chance", "overfit".

    `rows` are its per-epoch metric rows (`ml.epochs.EpochMetrics` fields) in epoch order;
    `class_counts` the dataset's samples per class (its schema's), None for a regression.
    """
    found = [_diverged(rows, class_counts), _chance(rows, class_counts), _overfit(rows)]
    return [flag for flag in found if flag is not None]
