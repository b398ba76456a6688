"""The job view's evaluation in headless Chromium on `capas up`: the confusion matrix, and a
click on a cell listing its misclassified samples, drawn for images, as rows for tabular data."""

import json

import httpx

from tests.conftest import EXAMPLES, tiny_job
from tests.e2e.test_dashboard import browser, link, page, shot, submit, wait  # noqa: F401


def report_of(service, job_id: str) -> dict:
    response = httpx.get(f"{service['url']}/jobs/{job_id}/evaluation",
                         headers={"Authorization": f"Bearer {service['key']}"})
    assert response.status_code == 200, response.text
    return response.json()


def open_job(page, job_id: str) -> None:  # noqa: F811
    page.wait_for_selector(".loading", state="detached")
    page.goto(page.url.split("#")[0] + f"#/jobs/{job_id}")
    page.wait_for_selector("#confusion")


def first_wrong_cell(report: dict) -> tuple[int, int]:
    return next((t, p) for t, row in enumerate(report["confusion_matrix"])
                for p, count in enumerate(row) if t != p and count)


def test_a_cell_of_the_matrix_draws_its_misclassified_digits(page, service):  # noqa: F811
    body = json.loads((EXAMPLES / "mlp-digits.json").read_text())
    body["training"]["epochs"] = 1  # an undertrained model: some digits go wrong
    body["model"]["name"] = "digits-evaluated"
    job_id = submit(service, body)
    wait(service, job_id)
    report = report_of(service, job_id)
    open_job(page, job_id)
    cells = page.eval_on_selector_all("#confusion tbody tr", "rows => rows.map(r => "
                                      "[...r.querySelectorAll('td')].map(c => +c.innerText))")
    assert cells == report["confusion_matrix"]
    true, predicted = first_wrong_cell(report)
    page.click(f"#confusion tbody tr:nth-child({true + 1}) td:nth-of-type({predicted + 1}) "
               "button")
    kept = [s for s in report["misclassified"] if (s["true"], s["predicted"]) == (
        report["classes"][true], report["classes"][predicted])]
    page.wait_for_selector(f"#cell-samples h3:has-text('True {report['classes'][true]}, "
                           f"predicted {report['classes'][predicted]}')")
    assert page.locator("#cell-samples canvas.sample").count() == len(kept) > 0
    label = page.get_attribute("#cell-samples canvas.sample", "aria-label")
    assert label.startswith(f"#{kept[0]['index']}: ")
    shot(page, "job-evaluation-digits")


def test_a_cell_of_the_matrix_lists_its_misclassified_rows(page, service):  # noqa: F811
    job_id = submit(service, tiny_job(epochs=2, name="iris-evaluated"))
    wait(service, job_id)
    report = report_of(service, job_id)
    open_job(page, job_id)
    assert page.locator("#confusion tbody tr").count() == 3
    if not report["misclassified_total"]:  # a perfect model has no cell to click
        page.wait_for_selector("text=No test sample is misclassified.")
        return
    true, predicted = first_wrong_cell(report)
    page.click(f"#confusion tbody tr:nth-child({true + 1}) td:nth-of-type({predicted + 1}) "
               "button")
    page.wait_for_selector("#cell-samples table")
    headers = page.eval_on_selector_all("#cell-samples thead th", "hs => hs.map(h => "
                                        "h.innerText.toLowerCase())")
    assert headers[0] == "index" and headers[1].startswith("sepal length")
    shot(page, "job-evaluation-iris")


def test_a_binary_job_draws_its_roc_and_precision_recall_curves(page, service):  # noqa: F811
    body = json.loads((EXAMPLES / "moons-playground.json").read_text())
    body["training"]["epochs"] = 3
    body["model"]["name"] = "moons-evaluated"
    job_id = submit(service, body)
    wait(service, job_id)
    report = report_of(service, job_id)
    open_job(page, job_id)
    page.wait_for_function("document.getElementById('roc-chart')?.data?.length === 1")
    drawn = page.evaluate("document.getElementById('roc-chart').data[0].x.length")
    assert drawn == len(report["roc"]["fpr"])
    title = page.evaluate("document.getElementById('pr-chart').layout.title.text")
    auc = float(f"{report['pr']['auc']:.3g}")  # as the page rounds it: 3 digits
    assert title == f"Precision-recall (AUC {auc:g})"
    shot(page, "job-evaluation-binary")


def test_a_version_is_evaluated_on_a_dataset_from_its_model_page(page, service):  # noqa: F811
    wait(service, submit(service, tiny_job(epochs=2, name="iris-served")))
    served = httpx.post(f"{service['url']}/models/iris-served/versions/1/evaluate",
                        json={"dataset": "builtin:iris"},
                        headers={"Authorization": f"Bearer {service['key']}"}).json()
    page.wait_for_selector(".loading", state="detached")
    page.goto(page.url.split("#")[0] + "#/models/iris-served/1")
    page.wait_for_selector("#model-card >> text=on 30 test samples")
    page.wait_for_selector("#evaluate-dataset option[value='builtin:iris']", state="attached")
    page.select_option("#evaluate-dataset", "builtin:iris")
    page.click("#evaluate button:has-text('Evaluate')")
    page.wait_for_selector("#evaluate-result #confusion")
    cells = page.eval_on_selector_all("#evaluate-result #confusion tbody tr", "rows => rows.map("
                                      "r => [...r.querySelectorAll('td')].map(c => +c.innerText))")
    assert cells == served["confusion_matrix"]
    page.select_option("#evaluate-dataset", "builtin:wine")
    page.click("#evaluate button:has-text('Evaluate')")
    page.wait_for_selector("#evaluate-result [role=alert] >> text=has 13 features per sample")
    shot(page, "model-evaluate")
