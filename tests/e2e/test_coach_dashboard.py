"""The training coach in headless Chromium on `capas up`: a run with learning rate 1000 is
flagged on its page, in the jobs list and on its model card, which serves the earlier version."""

from tests.conftest import example
from tests.e2e.test_dashboard import (  # noqa: F401 (fixtures)
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
