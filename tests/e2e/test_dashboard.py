"""The dashboard in headless Chromium (Playwright driving the system's browser) on `capas up`."""

import json
import re
import time
from pathlib import Path

import httpx
import pytest

from capas import Client
from tests.conftest import EXAMPLES, ROOT, require, tiny_job
from tests.datafiles import iris_csv

CHROMIUM = Path("/usr/bin/chromium")
# Nothing may reach the network: no updates, no sync, no field trials.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SHOTS = ROOT / "tests" / "output" / "dashboard"
LAPTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "the playwright package is not installed (pip install playwright)")
    require(CHROMIUM.exists(), f"Chromium is not at {CHROMIUM} (apt-get install chromium)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def link(browser, service):
    """The sign-in link that `capas up` printed on its first start."""
    deadline = time.monotonic() + 30
    while not (found := re.search(r"Dashboard: (\S+#key=\S+)", service["log"].read_text())):
        assert time.monotonic() < deadline, service["log"].read_text()
        time.sleep(0.2)
    return found.group(1)


@pytest.fixture
def page(browser, link):
    """A fresh tab signed in through the link; fails the test on any script error."""
    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(link)
    page.wait_for_selector("#who >> text=admin")
    yield page
    context.close()
    assert not errors, errors


def shot(page, name: str) -> None:
    # Not "networkidle": the jobs list and the job view keep the caller's event stream open,
    # so the network never goes idle there. The page is drawn once no view is still loading.
    page.wait_for_load_state("load")
    page.wait_for_selector(".loading", state="detached")
    page.screenshot(path=SHOTS / f"{name}.png", full_page=True)


def submit(service, body: dict) -> str:
    response = httpx.post(f"{service['url']}/jobs", json=body,
                          headers={"Authorization": f"Bearer {service['key']}"})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def wait(service, job_id: str) -> dict:
    with Client(service["url"], service["key"]) as client:
        job = client.wait(job_id, timeout_s=300)
    assert job["status"] == "succeeded", job["failure_reason"]
    return job


def test_the_link_signs_in_once_and_leaves_the_address_bar(browser, link, service):
    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    page.goto(link)
    page.wait_for_selector("#who >> text=admin (admin)")
    assert "key=" not in page.url and page.url.endswith("#/jobs")
    assert page.evaluate("sessionStorage.getItem('capas.key')") == service["key"]
    page.wait_for_selector("text=No jobs yet.")
    shot(page, "jobs-empty")
    # Signed out, a wrong key is refused in words and the right one signs in.
    page.click("text=Sign out")
    page.fill("#key", "capas_wrong")
    page.click("button:has-text('Sign in')")
    page.wait_for_selector("[role=alert] >> text=this key is not valid")
    shot(page, "sign-in")
    page.fill("#key", service["key"])
    page.click("button:has-text('Sign in')")
    page.wait_for_selector("#who >> text=admin (admin)")
    context.close()


def test_submit_an_example_and_watch_its_curve_grow_to_the_last_epoch(page, service):
    page.goto(page.url.split("#")[0] + "#/new")
    page.click("button.chip:has-text('MLP on digits')")
    page.wait_for_selector("#validity >> text=Valid: 17,226 parameters")
    assert "17,556 multiply-adds a sample" in page.inner_text("#validity")
    assert "8,320 params · 8,448 mult-adds" in page.inner_text("#layer-0")
    page.select_option("#framework", "pytorch")
    shot(page, "new-job")
    page.click("button:has-text('Submit job')")
    page.wait_for_url(re.compile(r"#/jobs/[0-9a-f-]+$"))
    job_id = page.url.rsplit("/", 1)[1]
    epochs, seen = json.loads((EXAMPLES / "mlp-digits.json").read_text())["training"]["epochs"], []
    deadline = time.monotonic() + 300
    while not seen or seen[-1] < epochs:
        assert time.monotonic() < deadline, f"the curve stopped at {seen[-1:]} epochs"
        drawn = page.get_attribute("#loss-chart", "data-epochs")
        if drawn is not None and (not seen or int(drawn) != seen[-1]):
            seen.append(int(drawn))
        time.sleep(0.05)
    assert len(seen) >= 3 and seen == sorted(seen), f"the curve did not grow live: {seen}"
    page.wait_for_selector("h1 .badge.succeeded")
    points = page.evaluate("document.getElementById('loss-chart').data.map(t => t.x.length)")
    assert points == [epochs, epochs]  # train and validation loss, one point per epoch
    page.wait_for_selector("a:has-text('digits-mlp version 1 (model card)')")
    page.wait_for_selector(".timeline >> text=succeeded")
    shot(page, "job-view")
    page.goto(page.url.split("#")[0] + "#/jobs")
    page.wait_for_selector(f"#job-{job_id} .badge.succeeded")
    shot(page, "jobs")


def test_compare_two_jobs(page, service):
    body = json.loads((EXAMPLES / "mlp-digits.json").read_text())
    ids = [submit(service, {**body, "framework": framework})
           for framework in ("tensorflow", "pytorch")]
    for job_id in ids:
        wait(service, job_id)
    page.goto(page.url.split("#")[0] + "#/jobs")
    for job_id in ids:
        page.check(f"#job-{job_id} input[type=checkbox]")
    page.click("a:has-text('Compare selected (2)')")
    page.wait_for_selector("#compare-loss[data-jobs='2']")
    traces = page.evaluate("document.getElementById('compare-loss').data.map(t => t.name)")
    assert len(traces) == 4 and sum("tensorflow" in t for t in traces) == 2
    table = page.inner_text("table.side")
    assert "tensorflow" in table and "pytorch" in table
    assert "test_accuracy" in table and "Mean epoch time" in table
    shot(page, "compare")


def test_draw_a_digit_and_get_a_prediction(page, service):
    body = json.loads((EXAMPLES / "mlp-digits.json").read_text())
    body["model"]["name"] = "digits-draw"
    wait(service, submit(service, body))
    wait(service, submit(service, {**body, "framework": "tensorflow"}))
    page.goto(page.url.split("#")[0] + "#/models/digits-draw")
    page.wait_for_selector("#model-card")
    page.wait_for_selector(".grid8")
    cells = page.locator(".pixel")
    # A "1": a vertical stroke down the middle of the grid, dragged with the mouse.
    top, bottom = cells.nth(1 * 8 + 4).bounding_box(), cells.nth(6 * 8 + 4).bounding_box()
    page.mouse.move(top["x"] + top["width"] / 2, top["y"] + top["height"] / 2)
    page.mouse.down()
    page.mouse.move(bottom["x"] + bottom["width"] / 2, bottom["y"] + bottom["height"] / 2,
                    steps=12)
    page.mouse.up()
    page.wait_for_selector("#prediction")
    assert page.inner_text("#prediction") in [str(d) for d in range(10)]
    assert page.locator(".bars li").count() == 10
    # The keyboard draws too: the focused cell inks with the space bar, and the answer follows.
    before = page.inner_text(".bars")
    page.focus(".pixel[data-i='0']")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Space")
    page.wait_for_function(f"document.querySelector('.bars').innerText !== {json.dumps(before)}")
    shot(page, "models-playground")
    # A second stroke that starts on an inked cell draws too: nothing is erased but by the
    # Erase pen.
    ink = "[...document.querySelectorAll('.pixel')].map(c => c.style.getPropertyValue('--ink'))"
    inked = page.evaluate(ink)
    middle = cells.nth(3 * 8 + 4).bounding_box()
    page.mouse.move(middle["x"] + middle["width"] / 2, middle["y"] + middle["height"] / 2)
    page.mouse.down()
    page.mouse.move(middle["x"] + 3 * middle["width"], middle["y"] + middle["height"] / 2,
                    steps=6)
    page.mouse.up()
    after = page.evaluate(ink)
    assert all(float(b) >= float(a) for a, b in zip(inked, after, strict=True))
    assert after[3 * 8 + 4] == "1" and float(after[3 * 8 + 6]) > float(inked[3 * 8 + 6])
    page.click("#grid-erase")
    page.mouse.click(middle["x"] + middle["width"] / 2, middle["y"] + middle["height"] / 2)
    assert page.evaluate(ink)[3 * 8 + 4] == "0"
    page.click("#grid-ink")
    # An alias set from the page steers the registry.
    page.fill("#alias-name", "production")
    page.select_option("#alias-version", "1")
    page.click("button:has-text('Point')")
    page.wait_for_selector(".badge.alias:has-text('production')")
    assert "production → v1" in page.inner_text("main")
    page.click("button[aria-label='Remove production']")
    page.wait_for_selector("text=No alias: predictions use the latest version the training "
                           "coach did not flag.")


def test_predict_tabular_features_from_a_form(page, service):
    wait(service, submit(service, tiny_job(name="iris-form")))
    page.goto(page.url.split("#")[0] + "#/models/iris-form")
    page.wait_for_selector("label:has-text('petal width (cm)')")
    page.click("#playground button.chip:has-text('#1')")  # the first sample of iris: a setosa
    page.wait_for_selector("#prediction")
    assert page.inner_text("#prediction") in ("setosa", "versicolor", "virginica")
    assert page.locator(".bars li").count() == 3
    shot(page, "models-form")
    page.click("button:has-text('Make public')")
    page.wait_for_selector("text=Every member: it is public.")
    with Client(service["url"], service["key"]) as client:
        assert client.model("iris-form")["public"] is True


def test_a_class_per_step_is_predicted_step_by_step(page, service):
    body = json.loads((EXAMPLES / "seq2seq-reverse.json").read_text())
    body["model"]["name"] = "reverse-form"
    body["training"]["epochs"] = 2
    wait(service, submit(service, body))
    page.goto(page.url.split("#")[0] + "#/models/reverse-form")
    page.wait_for_selector("text=a class at each of 6 time steps")
    page.click("#playground button.chip:has-text('#1')")  # the first sequence of the set
    page.wait_for_selector("#prediction")
    steps = page.inner_text("#prediction").split()
    assert len(steps) == 6 and set(steps) <= {str(d) for d in range(10)}
    assert page.locator(".bars li").count() == 6
    shot(page, "models-steps")


def test_cancel_a_running_job_from_the_list(page, service):
    body = json.loads((EXAMPLES / "mlp-digits.json").read_text())
    body["model"]["name"] = "long-runner"
    body["training"]["epochs"] = 1000
    job_id = submit(service, body)
    page.goto(page.url.split("#")[0] + "#/jobs")
    row = f"#job-{job_id}"
    page.wait_for_selector(f"{row} .badge.running")
    page.wait_for_function(  # the epochs counter follows the job's event stream
        f"document.querySelector('{row} progress')?.value >= 2")
    page.click(f"{row} button:has-text('Cancel')")
    page.wait_for_selector(f"{row} .badge.cancelled")
    assert page.inner_text(f"{row} .reason")  # why it stopped, in words
    assert page.locator(f"{row} button:has-text('Cancel')").count() == 0


def test_a_failed_job_says_why(page, service):
    body = json.loads((EXAMPLES / "mlp-digits.json").read_text())
    body["model"]["name"] = "out-of-time"
    body["training"]["epochs"] = 1000
    job_id = submit(service, {**body, "max_runtime_s": 2})
    page.goto(page.url.split("#")[0] + f"#/jobs/{job_id}")
    page.wait_for_selector("h1 .badge.failed")
    assert "exceeded max_runtime_s (2 s)" in page.inner_text("[role=alert]")
    shot(page, "job-failed")


def test_the_job_view_shows_the_spec_as_code(page, service):
    body = json.loads((EXAMPLES / "cnn-digits.json").read_text())
    body["model"]["name"] = "as-code"
    job_id = submit(service, body)
    page.goto(page.url.split("#")[0] + f"#/jobs/{job_id}")
    page.click("button:has-text('Code: PyTorch')")
    script = page.inner_text("pre[aria-label='pytorch script']")
    assert "class Net(nn.Module):" in script and "ChannelsFirst()" in script
    page.click("button:has-text('Code: Keras')")
    assert "keras.Sequential" in page.inner_text("pre[aria-label='tensorflow script']")
    with page.expect_download() as downloaded:
        page.click("a:has-text('Download as-code-tensorflow.py')")
    assert downloaded.value.suggested_filename == "as-code-tensorflow.py"
    shot(page, "job-code")


def test_a_validation_error_is_placed_on_its_layer(page):
    page.goto(page.url.split("#")[0] + "#/new")
    body = json.loads((EXAMPLES / "cnn-digits.json").read_text())
    body["model"]["layers"][2]["pool_size"] = 16
    page.fill("#spec", json.dumps(body, indent=2))
    page.wait_for_selector("#layer-2.bad")
    error = page.inner_text("#layer-2 .layer-errors")
    assert "model.layers[2].pool_size" in error and "larger than the input" in error
    assert page.locator(".layer.bad").count() == 1
    assert page.inner_text("#layer-1 .shape") == "[8 × 8 × 16]"
    # The error names its line in the editor and goes there.
    text = json.dumps(body, indent=2)
    line = text[:text.index('"pool_size": 16')].count("\n") + 1
    go = page.locator("#layer-2 .layer-errors button.goto")
    assert go.inner_text() == f"line {line}"
    go.click()
    assert page.evaluate("(() => { const e = document.getElementById('spec');"
                         " return e.value.slice(e.selectionStart, e.selectionEnd); })()") == "16"
    assert page.evaluate("document.activeElement.id") == "spec"
    shot(page, "new-job-error")
    # Broken JSON is named where it breaks, and the names of the catalog are offered.
    page.fill("#spec", '{"model": {"layers": [{"type": "con')
    page.wait_for_selector("#json-status.reason")
    page.focus("#spec")
    page.keyboard.press("End")
    page.click(".hints button:has-text('conv2d')")
    assert '"type": "conv2d' in page.input_value("#spec")


def test_the_diagram_draws_wrapped_and_residual_blocks(page):
    page.goto(page.url.split("#")[0] + "#/new")
    body = {"model": {"name": "blocks", "input": {"shape": [4, 6, 6, 1]}, "layers": [
        {"type": "time_distributed", "layers": [
            {"type": "conv2d", "filters": 2, "kernel_size": 3}, {"type": "flatten"}]},
        {"type": "residual", "layers": [{"type": "layernorm"}, {
            "type": "multi_head_attention", "num_heads": 2}]},
        {"type": "lstm", "units": 3}], "objective": "mse"}}
    page.fill("#spec", json.dumps(body, indent=2))
    page.wait_for_selector("#layer-2 .shape >> text=[3]")
    wrapped = page.locator("#layer-0 .block.time_distributed .layer.inner .name")
    assert wrapped.all_inner_texts() == ["conv2d", "flatten"]
    assert page.locator("#layer-0 .layer.inner .shape").all_inner_texts() == [
        "[4 × 4 × 2]", "[32]"]
    assert "applied at every time step" in page.inner_text("#layer-0 .block-note")
    assert page.locator("#layer-1 .block.residual .layer.inner .name").all_inner_texts() == [
        "layernorm", "multi_head_attention"]
    assert "added to its input" in page.inner_text("#layer-1 .block-note")
    assert page.inner_text("#layer-1 .shape") == "[4 × 32]"
    # An error inside a block marks its layer there, and is listed on the layer holding it.
    body["model"]["layers"][0]["layers"][1] = {"type": "lstm", "units": 3}
    page.fill("#spec", json.dumps(body, indent=2))
    page.wait_for_selector("#layer-0.bad")
    assert page.locator("#layer-0 .layer.inner.bad .name").all_inner_texts() == ["lstm"]
    assert "model.layers[0].layers[1].type" in page.inner_text("#layer-0 .layer-errors")
    shot(page, "new-job-blocks")


def test_upload_a_dataset_and_see_a_refusal_in_words(page, tmp_path):
    page.goto(page.url.split("#")[0] + "#/datasets")
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"a,b,label\n1,2,x\n3,nan,y\n")
    page.set_input_files("#file", str(bad))
    page.fill("#target", "label")
    page.click("button:has-text('Upload')")
    page.wait_for_selector("[role=alert] >> text=row 3, column 'b'")
    shot(page, "datasets-refused")
    good = tmp_path / "iris.csv"
    good.write_bytes(iris_csv())
    page.set_input_files("#file", str(good))
    page.fill("#target", "species")
    page.fill("#name", "my iris")
    page.click("button:has-text('Upload')")
    page.wait_for_url(re.compile(r"#/datasets/ds_"))
    page.wait_for_selector("main h1:has-text('my iris')")
    assert "setosa (50)" in page.inner_text("dl.facts")
    # Its owner opens it to every member, and closes it again.
    page.click("button:has-text('Make public')")
    page.wait_for_selector("dl.facts >> text=yes: every member may see it and train on it")
    page.click("button:has-text('Make private')")
    page.wait_for_selector("dl.facts >> text=no: only its owner")


def test_catalog_datasets_and_phone_width(page, browser, link):
    page.goto(page.url.split("#")[0] + "#/catalog")
    page.wait_for_selector("#activation-elliott .mini-chart .main-svg")
    drawn = page.locator("figure.activation").count()
    assert drawn >= 19 and page.locator(".mini-chart.js-plotly-plot").count() == drawn
    page.wait_for_selector("#section-optimizers >> text=adadelta")
    shot(page, "catalog")
    page.goto(page.url.split("#")[0] + "#/datasets")
    page.wait_for_selector("text=builtin:iris")
    shot(page, "datasets")
    page.click("a:has-text('iris')")
    page.wait_for_selector("text=First samples")
    assert "setosa" in page.inner_text("table.numbers")
    shot(page, "dataset")
    page.goto(page.url.split("#")[0] + "#/datasets/builtin:digits")
    page.wait_for_selector("canvas.sample")
    shot(page, "dataset-images")
    page.goto(page.url.split("#")[0] + "#/datasets/builtin:digit_sequences")
    page.wait_for_selector(".frames canvas.sample")
    assert page.locator(".frames canvas.sample").count() == 5 * 3  # five samples of 3 frames
    shot(page, "dataset-sequences")
    page.goto(page.url.split("#")[0] + "#/models")
    page.wait_for_selector("main h1:has-text('Models')")
    shot(page, "models")
    phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True).new_page()
    phone.goto(link)
    phone.wait_for_selector("main h1:has-text('Jobs')")
    # Readable on a phone: the page does not scroll sideways; wide tables scroll in their box.
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(phone, "jobs-phone")
    phone.goto(link.split("#")[0] + "#/new")
    phone.wait_for_selector("#validity")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(phone, "new-job-phone")
    phone.context.close()


def test_a_page_still_loading_never_draws_over_the_next(page):
    """The jobs list's answer is held until the catalog has been drawn: the late list must
    not replace the page the student went to."""
    catalog = page.url.split("#")[0] + "#/catalog"
    page.goto(catalog)
    page.wait_for_selector("#activation-elliott .mini-chart .main-svg")
    held = []
    page.route("**/jobs?limit=*", lambda route: held.append(route))
    with page.expect_request("**/jobs?limit=*"):
        page.goto(page.url.split("#")[0] + "#/jobs")
    for _ in range(100):  # the route's handler runs as the page's events are processed
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the jobs list was never asked for"
    page.goto(catalog)
    page.wait_for_selector("#activation-elliott .mini-chart .main-svg")
    with page.expect_response("**/jobs?limit=*"):
        held[0].continue_()
    # The late list has had its chance to draw (on a slow host this can only miss the bug,
    # never fail without it).
    page.wait_for_timeout(500)
    assert page.locator("#main table.jobs").count() == 0
    assert page.locator("figure.activation").count() >= 19
