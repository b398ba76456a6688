"""The dashboard's study pages in headless Chromium on `capas up`: a study started from the New
study form, watched to its end, its charts, sorted table and "publish best"; a refusal in words."""

import json
import re

from tests.conftest import tiny_job
from tests.e2e.test_dashboard import browser, link, page, shot  # noqa: F401 (fixtures)


def open_new_study(page) -> None:  # noqa: F811
    # The jobs list the sign-in lands on is drawn first: a view still loading when the address
    # changes would be drawn over the next one.
    page.wait_for_selector("h1:has-text('Jobs')")
    page.wait_for_selector(".loading", state="detached")
    page.goto(page.url.split("#")[0] + "#/new-study")
    page.wait_for_selector("#study-json")


def small_study() -> dict:
    return {"name": "dashboard-study", "base": tiny_job(epochs=3, name="dashboard-study"),
            "space": {"training.optimizer.learning_rate": {"grid": [0.005, 0.05, 0.1]},
                      "framework": {"grid": ["pytorch"]}},
            "objective": {"metric": "val_accuracy", "direction": "maximize"},
            "max_concurrent": 2, "publish": "none"}


def test_start_a_study_watch_it_and_publish_its_best(page, service):  # noqa: F811
    open_new_study(page)
    assert json.loads(page.input_value("#study-json"))["space"]  # a starter to edit
    page.fill("#study-json", json.dumps(small_study()))
    page.click("button:has-text('Start the study')")
    page.wait_for_url(re.compile(r"#/studies/[0-9a-f-]+$"))
    page.wait_for_selector("h1 .badge.finished", timeout=300_000)
    page.wait_for_function("document.getElementById('study-curves').data?.length === 3")
    page.wait_for_function(
        "document.getElementById('study-parallel').data?.[0].dimensions.length === 3")
    page.wait_for_function("document.getElementById('study-importance').data?.length === 1"
                           " || document.getElementById('study-importance').innerText"
                           ".includes('Parameter importance needs')")
    assert page.locator("#trials tbody tr").count() == 3
    page.click("#trials th button:has-text('value')")
    page.click("#trials th button:has-text('value')")
    assert page.get_attribute("#trials th:nth-child(4)", "aria-sort") == "descending"
    first = page.inner_text("#trials tbody tr:first-child td:first-child")
    assert "★" in first  # the best trial, first by value, descending
    page.select_option("#colour-by", "framework")
    page.fill("#alias", "production")
    page.click("button:has-text('Publish best')")
    page.wait_for_selector("#toast >> text=Published dashboard-study version 1 as production")
    shot(page, "study")
    page.goto(page.url.split("#")[0] + "#/studies")
    page.wait_for_selector("a:has-text('dashboard-study')")
    shot(page, "studies")


def test_a_refused_study_says_why(page):  # noqa: F811
    open_new_study(page)
    body = small_study()
    body["objective"]["metric"] = "val_acc"
    page.fill("#study-json", json.dumps(body))
    page.click("button:has-text('Start the study')")
    page.wait_for_selector("[role=alert] >> text=objective.metric")
    assert "val_acc" in page.inner_text("[role=alert]")
