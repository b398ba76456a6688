"""Experiments in headless Chromium on `capas up`: the training coach flags a run with learning
rate 1000 on its page, in the jobs list and on its model card, which serves the earlier version;
a run's name and note, "Run on the other framework", "Edit as a new job", and Compare's diff."""

import json

import httpx

from tests.conftest import example, tiny_job
from tests.datafiles import iris_csv
from tests.e2e.test_dashboard import (  # noqa: F401 (fixtures)
    LAPTOP,
    TIMEOUT_MS,
    browser,
    link,
    page,
    shot,
    submit,
    wait,
)


def test_a_flagged_run_is_shown_and_not_served_by_default(page, service):  # noqa: F811
    healthy = example("mlp-digits.json")
    healthy["model"]["name"] = "coached-dashboard"
    healthy["training"]["epochs"] = 4
    wild = {**healthy, "framework": "tensorflow",
            "training": {**healthy["training"],
                         "optimizer": {"type": "adam", "learning_rate": 1000.0}}}
    healthy_id = submit(service, healthy)
    wait(service, healthy_id)
    wild_id = submit(service, wild)
    assert wait(service, wild_id)["coach"]

    page.wait_for_selector("h1:has-text('Jobs')")
    page.wait_for_selector(f"#job-{wild_id} .badge.coach[data-flag=chance]")
    assert not page.query_selector(f"#job-{healthy_id} .badge.coach")
    shot(page, "coach-jobs")

    page.goto(page.url.split("#")[0] + f"#/jobs/{wild_id}")
    box = page.wait_for_selector("#coach")
    assert "Stayed at chance level" in box.inner_text()
    shot(page, "coach-job")
    # The charts' toolbars offer nothing that sends data off the server.
    titles = page.eval_on_selector_all("#loss-chart .modebar-btn",
                                       "bs => bs.map(b => b.getAttribute('data-title'))")
    assert "Download plot as a PNG" in titles, titles
    assert not [t for t in titles if any(w in t.lower() for w in ("cloud", "studio", "share"))]
    page.click("#coach li[data-flag=chance] a:has-text('learning rate')")
    page.wait_for_selector("#section-job")
    assert page.url.endswith("#/catalog/training")

    page.goto(page.url.split("#")[0] + "#/models/coached-dashboard")
    page.wait_for_selector("#model-card")
    assert "Model card · v1" in page.inner_text("#model-card h2")  # the default: unflagged
    page.goto(page.url.split("#")[0] + "#/models/coached-dashboard/2")
    page.wait_for_selector("#model-card h2:has-text('v2')")
    card = page.inner_text("#model-card")
    assert "Not served by default: the training coach flagged it" in card
    assert "Stayed at chance level" in card
    shot(page, "coach-card")


def test_name_rerun_on_the_other_framework_edit_and_compare_the_bodies(page, service):  # noqa: F811
    body = {**tiny_job("pytorch", epochs=3, name="experiment"), "name": "tanh, lr 0.05",
            "note": "the workshop's first try"}
    first = submit(service, body)
    wait(service, first)
    page.wait_for_selector(f"#job-{first} .job-name:has-text('tanh, lr 0.05')")
    assert "the workshop's first try" in page.inner_text(f"#job-{first}")

    page.goto(page.url.split("#")[0] + f"#/jobs/{first}")
    page.wait_for_selector("#job-note:has-text('the workshop')")
    page.click("#other-framework")
    page.wait_for_function(f"!location.hash.endsWith('{first}') && "
                           "location.hash.startsWith('#/jobs/')")
    second = page.evaluate("location.hash").split("/")[-1]
    rerun = wait(service, second)
    assert (rerun["framework"], rerun["name"], rerun["note"]) == (
        "tensorflow", "tanh, lr 0.05", "the workshop's first try")
    assert rerun["spec"]["model"] == wait(service, first)["spec"]["model"]

    page.wait_for_selector("h1 .badge.succeeded")
    page.click("#edit-as-new")
    page.wait_for_selector("#spec")
    page.wait_for_function("document.getElementById('spec')?.value.includes('experiment')")
    edited = json.loads(page.input_value("#spec"))
    assert edited["framework"] == "tensorflow" and edited["model"]["name"] == "experiment"
    shot(page, "edit-as-new")

    page.goto(page.url.split("#")[0] + f"#/compare/{first},{second}")
    page.wait_for_selector("#spec-diff")
    rows = {row.query_selector("th").inner_text(): row
            for row in page.query_selector_all("#spec-diff tbody tr")}
    assert set(rows) == {"framework"}  # the one setting that differs
    assert rows["framework"].query_selector("td.changed").inner_text() == '"tensorflow"'
    # The diff comes before the curves.
    assert page.evaluate("document.getElementById('spec-diff').compareDocumentPosition("
                         "document.getElementById('compare-loss')) & 4")
    shot(page, "compare-diff")


def test_compare_with_on_a_members_only_job_offers_the_other_framework(browser, link,  # noqa: F811
                                                                       service):
    created = httpx.post(f"{service['url']}/users", json={"name": "only-one", "role": "member"},
                         headers={"Authorization": f"Bearer {service['key']}"})
    assert created.status_code == 201, created.text
    member = {**service, "key": created.json()["api_key"]}
    only = submit(member, tiny_job("pytorch", epochs=2, name="only-one-model"))
    context = browser.new_context(viewport=LAPTOP)
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    tab.goto(link.split("#")[0] + f"#key={member['key']}")
    tab.wait_for_selector("#who >> text=only-one")
    tab.goto(link.split("#")[0] + f"#/jobs/{only}")
    tab.click("a:has-text('Compare with…')")
    tab.click("#compare-other")
    tab.wait_for_selector("#compare-loss[data-jobs='2']")
    other = tab.evaluate("location.hash").split("/")[-1].split(",")[1]
    assert wait(member, other)["framework"] == "tensorflow"
    shot(tab, "compare-only-job")
    context.close()


def test_an_example_or_a_jobs_spec_that_replaces_an_edit_is_one_undo_away(page):  # noqa: F811
    page.wait_for_selector("h1:has-text('Jobs')")
    page.wait_for_selector(".loading", state="detached")
    page.goto(page.url.split("#")[0] + "#/new")
    page.wait_for_function("document.getElementById('spec')?.value.includes('model')")
    page.click("button.chip:has-text('MLP on digits')")  # an unedited example: nothing to undo
    page.wait_for_function("document.getElementById('spec')?.value.includes('digits-mlp')")
    assert not page.query_selector("#undo-replace")
    edited = page.input_value("#spec").replace("digits-mlp", "my-edited-mlp")
    page.fill("#spec", edited)
    page.locator("button.chip").nth(1).click()
    page.wait_for_selector("#undo-replace")
    assert "my-edited-mlp" not in page.input_value("#spec")
    page.click("#undo-replace")
    assert page.input_value("#spec") == edited
    assert not page.query_selector("#undo-replace")
    shot(page, "example-undo")


def test_the_upload_form_offers_the_csv_headers_columns_as_target(page, tmp_path):  # noqa: F811
    page.goto(page.url.split("#")[0] + "#/datasets")
    chosen = tmp_path / "plants.csv"
    chosen.write_bytes(b'petal length,"width, in cm",species\n1,2,x\n')
    page.set_input_files("#file", str(chosen))
    page.wait_for_function("document.querySelectorAll('#target-columns option').length === 3")
    offered = page.eval_on_selector_all("#target-columns option", "os => os.map(o => o.value)")
    assert offered == ["petal length", "width, in cm", "species"]
    assert page.get_attribute("#target", "list") == "target-columns"
    assert page.get_attribute("#target", "placeholder") == "one of its 3 columns"
    page.set_input_files("#file", [])  # no file, no columns
    page.wait_for_function("!document.querySelector('#target-columns option')")


def test_a_job_without_epochs_yet_charts_the_quality_its_task_has(page):  # noqa: F811
    page.wait_for_selector("h1:has-text('Jobs')")  # the catalog is loaded
    quality = page.evaluate("""async () => {
      const { qualityMetric } = await import('/static/ui.js');
      return [qualityMetric([], 'categorical_crossentropy'), qualityMetric([], 'mse'),
              qualityMetric([{ accuracy: 0.5 }], undefined)];
    }""")
    assert quality == ["accuracy", "mae", "accuracy"]


def test_a_job_on_an_upload_names_the_dataset_not_its_id(page, service):  # noqa: F811
    uploaded = httpx.post(f"{service['url']}/datasets",
                          headers={"Authorization": f"Bearer {service['key']}"},
                          files={"file": ("iris.csv", iris_csv(), "text/csv")},
                          data={"target": "species", "name": "my flowers"})
    assert uploaded.status_code == 201, uploaded.text
    dataset_id = uploaded.json()["id"]
    job_id = submit(service, {**tiny_job(name="on-an-upload"), "dataset": dataset_id})
    page.goto(page.url.split("#")[0] + f"#/jobs/{job_id}")
    page.wait_for_selector(".dataset-link:has-text('my flowers')")
    assert page.get_attribute(".dataset-link", "title") == dataset_id


def test_submit_stays_in_reach_on_a_long_spec(page):  # noqa: F811
    page.wait_for_selector("h1:has-text('Jobs')")
    page.wait_for_selector(".loading", state="detached")
    page.goto(page.url.split("#")[0] + "#/new")
    page.wait_for_selector("#spec")
    body = tiny_job(name="long")
    body["model"]["layers"] = [{"type": "dense", "units": 8}] * 40 + body["model"]["layers"][-1:]
    page.fill("#spec", json.dumps(body, indent=2))
    page.wait_for_selector("#layer-40")
    page.evaluate("window.scrollTo(0, 0)")
    button = page.locator("button:has-text('Submit job')").bounding_box()
    height = page.viewport_size["height"]
    assert page.evaluate("document.documentElement.scrollHeight") > 2 * height  # a long page
    assert 0 <= button["y"] and button["y"] + button["height"] <= height
    shot(page, "new-job-sticky-submit")


def test_a_submit_refusal_clears_once_the_spec_is_fixed(page):  # noqa: F811
    page.wait_for_selector("h1:has-text('Jobs')")
    page.wait_for_selector(".loading", state="detached")
    page.goto(page.url.split("#")[0] + "#/new")
    page.wait_for_selector("#spec")
    body = {**tiny_job(name="refused-then-fixed"), "max_runtime_s": 10**9}
    page.fill("#spec", json.dumps(body, indent=2))
    page.wait_for_selector("#validity >> text=Valid")
    page.click("button:has-text('Submit job')")
    page.wait_for_selector("[role=alert] >> text=max_runtime_s")
    page.fill("#spec", json.dumps({**body, "max_runtime_s": 60}, indent=2))
    page.wait_for_selector("[role=alert] >> text=max_runtime_s", state="detached")
