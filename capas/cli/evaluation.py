"""`capas evaluation JOB` and `capas evaluate MODEL VERSION --dataset ID`: an evaluation report
(a job's on its test split, a version's on a dataset) as tables."""

from typing import Annotated

import typer

from capas.cli.console import api_client, console, print_table, say

app = typer.Typer()

# Misclassified samples listed in the terminal (the report keeps more; --json shows them).
SHOWN_MISCLASSIFIED = 10


@app.command()
def evaluation(job_id: str, as_json: Annotated[bool, typer.Option(
        "--json", help="print the whole report as JSON")] = False) -> None:
    """A succeeded job's evaluation on its test split: confusion matrix, per-class precision,
    recall and F1, misclassified samples (classification); MAE, RMSE, R² (regression)."""
    with api_client() as client:
        report = client.evaluation(job_id)
    _print(job_id, report, as_json)


@app.command()
def evaluate(model: str, version: int,
             dataset: Annotated[str, typer.Option(
                 help="a built-in or an upload with the version's features and classes")],
             as_json: Annotated[bool, typer.Option(
                 "--json", help="print the whole report as JSON")] = False) -> None:
    """Evaluate a version of yours on a dataset with its served ONNX graph (the test split
    when it is the data the version was trained on, else every sample)."""
    with api_client() as client:
        report = client.evaluate(model, version, dataset)
    _print(f"{model} v{version} on {dataset} ({report['split']})", report, as_json)


def _print(title: str, report: dict, as_json: bool) -> None:
    if as_json:
        console.print_json(data=report)
    elif report["task"] == "classification":
        _classification(title, report)
    else:
        _regression(title, report)


def _classification(title: str, report: dict) -> None:
    part = "test " if report["split"] == "test" else ""
    counted = (f"{report['samples']} {part}samples × {report['steps']} time steps, each "
               "counted" if report["per_time_step"] else f"{report['samples']} {part}samples")
    say(f"{title}: classification, {counted}")
    say(f"accuracy {report['accuracy']:.4f}   macro F1 {report['macro']['f1']:.4f}   "
        f"weighted F1 {report['weighted']['f1']:.4f}")
    if report["roc"]:
        say(f"ROC AUC {report['roc']['auc']:.4f}   PR AUC {report['pr']['auc']:.4f}")
    classes = report["classes"]
    say("")
    say("confusion matrix (rows: true class, columns: predicted)")
    # Class names head the columns when they fit the terminal; else their numbers do, and
    # each row says which number is which class.
    counts = [[str(count) for count in row] for row in report["confusion_matrix"]]
    width = max(len(name) for name in classes) + sum(
        max(len(name), *(len(row[i]) for row in counts)) + 2 for i, name in enumerate(classes))
    numbered = width > console.width
    headers = [str(i) if numbered else name for i, name in enumerate(classes)]
    print_table(["true", *headers],
                ([f"{i} {name}" if numbered else name, *row]
                 for i, (name, row) in enumerate(zip(classes, counts, strict=True))),
                whole=("true", *headers))
    say("")
    rows = [[c["class"], f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}",
             str(c["support"])] for c in report["per_class"]]
    rows += [[f"{average} avg", f"{report[average]['precision']:.3f}",
              f"{report[average]['recall']:.3f}", f"{report[average]['f1']:.3f}", ""]
             for average in ("macro", "weighted")]
    print_table(["class", "precision", "recall", "f1", "support"], rows,
                whole=("precision", "recall", "f1", "support"))
    shown = report["misclassified"][:SHOWN_MISCLASSIFIED]
    say("")
    say(f"misclassified: {report['misclassified_total']}"
        + (f" (the first {len(shown)}; --json lists {len(report['misclassified'])})"
           if len(shown) < report["misclassified_total"] else ""))
    if shown:
        print_table(["index", "true", "predicted", "probabilities"],
                    ([str(s["index"]) + (f" step {s['step']}" if "step" in s else ""),
                      s["true"], s["predicted"],
                      " ".join(f"{p:.2f}" for p in s["probabilities"])] for s in shown),
                    whole=("index",))


def _regression(title: str, report: dict) -> None:
    say(f"{title}: regression, {report['samples']} "
        + ("test " if report["split"] == "test" else "") + "samples"
        + (f" × {report['outputs_per_sample']} outputs, each counted"
           if report["outputs_per_sample"] > 1 else ""))
    r2 = "—" if report["r2"] is None else f"{report['r2']:.4f}"
    say(f"MAE {report['mae']:.4g}   RMSE {report['rmse']:.4g}   R² {r2}")
    largest = sorted(report["residuals"], key=lambda r: -abs(r["residual"]))[:5]
    say("")
    say(f"largest residuals (true − predicted) of {len(report['residuals'])} kept")
    print_table(["index", "predicted", "residual"],
                ([str(r["index"]), f"{r['predicted']:.4g}", f"{r['residual']:.4g}"]
                 for r in largest))
