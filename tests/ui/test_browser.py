"""The UI in headless Chromium over real penguin runs: runs → run → node → artifact →
lineage, with screenshots kept under test-artifacts/ui/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conveyor.evaluation import load_evaluation
from conveyor.metadata import MetadataStore
from conveyor.reports.formatting import number

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"

NODES = [
    "CsvExampleGen",
    "UnlabelledExampleGen",
    "StatisticsGen",
    "SchemaGen",
    "ExampleValidator",
    "Transform",
    "Trainer",
    "LatestBlessedModel",
    "Evaluator",
    "InfraValidator",
    "Pusher",
    "BulkInferrer",
]
AFTER_TRAINER = ["LatestBlessedModel", "Evaluator", "InfraValidator", "Pusher", "BulkInferrer"]


@pytest.fixture(scope="module")
def browser(chromium) -> Iterator:
    """Playwright driving the system chromium (no browser download)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "playwright is not installed (pip install -e '.[test]')"
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    with sync_playwright() as p:
        found = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield found
        found.close()


@pytest.fixture
def page(browser, ui_url):
    """A fresh page that may only reach the UI's own address; other requests are recorded
    and refused."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.outside = []
    origin = urlsplit(ui_url).netloc

    def guard(route):
        if urlsplit(route.request.url).netloc == origin:
            route.continue_()
        else:
            page.outside.append(route.request.url)
            route.abort()

    page.route("**/*", guard)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    yield page
    context.close()


def _shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _states(page) -> dict[str, str]:
    boxes = page.locator("svg#dag g.box")
    return {
        boxes.nth(i).get_attribute("data-key"): boxes.nth(i).get_attribute("data-state")
        for i in range(boxes.count())
    }


def test_ui_walks_from_runs_to_lineage(page, ui_url, penguin_runs):
    complete = penguin_runs["complete"]
    page.goto(ui_url + "/")
    assert page.locator(f'tr[data-run="{complete}"] .state').inner_text() == "complete"
    assert page.locator(f'tr[data-run="{penguin_runs["failed"]}"] .state').inner_text() == "failed"
    _shot(page, "1-runs")

    page.click(f'a[href="/runs/{complete}"]')
    assert _states(page) == {node: "complete" for node in NODES}
    assert page.locator("svg#dag path.edge").count() >= 12
    assert "s" in page.locator('tr[data-node="Trainer"] td.n').inner_text()  # a duration
    _shot(page, "2-run")

    page.click('svg#dag g.box[data-key="Evaluator"]')
    assert page.locator("h1").inner_text().startswith("Evaluator")
    assert "accuracy" in page.locator("main").inner_text()  # its eval_config parameter
    assert page.locator("#log-tail").count() == 1
    _shot(page, "3-evaluator")

    page.click("a:has-text('ModelEvaluation')")
    evaluation = _artifact(penguin_runs, page.url)
    expected = number(load_evaluation(evaluation.uri).metrics()["accuracy"])
    shown = page.locator('#overall-metrics tr[data-metric="accuracy"] td').inner_text()
    assert shown == expected
    report = page.frame_locator("iframe#report")
    assert expected in report.locator("body").inner_text()  # the same report `conveyor show` writes
    _shot(page, "4-evaluation")

    page.click("#lineage-link")
    assert page.locator(f'svg#lineage g.box[data-key="a{evaluation.id}"]').count() == 1
    upstream = page.locator("#upstream-code").inner_text()
    for node in ("CsvExampleGen", "Transform", "Trainer", "Evaluator"):
        assert node in upstream
    assert "preprocessing.py" in upstream and "penguin_sklearn.py" in upstream
    _shot(page, "5-lineage")
    assert not page.errors and not page.outside, (page.errors, page.outside)


def _artifact(penguin_runs, url: str):
    store = MetadataStore(penguin_runs["url"])
    try:
        return store.get_artifact(int(url.rstrip("/").rsplit("/", 1)[-1]))
    finally:
        store.close()


def test_a_failed_run_shows_the_failed_node_the_skipped_ones_and_the_resume_command(
    page, ui_url, penguin_runs
):
    page.goto(f"{ui_url}/runs/{penguin_runs['failed']}")
    states = _states(page)
    assert states["Trainer"] == "failed"
    assert states["Transform"] == "cached"
    assert {states[n] for n in AFTER_TRAINER} == {"skipped"}
    assert page.locator("#resume-command").inner_text() == penguin_runs["resume_command"]
    assert "broken on purpose" in page.locator('tr[data-node="Trainer"]').inner_text()
    _shot(page, "6-failed-run")
    page.click('svg#dag g.box[data-key="Trainer"]')
    assert "broken on purpose" in page.locator("#log-tail").inner_text()
    assert not page.errors and not page.outside


def test_two_runs_compare_side_by_side(page, ui_url, penguin_runs):
    page.goto(ui_url + "/")
    assert page.locator("#compare-button").is_disabled()
    for run in (penguin_runs["complete"], penguin_runs["failed"]):
        page.check(f'tr[data-run="{run}"] input[type="checkbox"]')
    page.click("#compare-button")
    trainer = page.locator('#compare-runs tr[data-node="Trainer"]').inner_text()
    assert "complete" in trainer and "failed" in trainer
    assert "parameters differ" in trainer  # another module_file
    _shot(page, "7-compare")
    assert not page.errors and not page.outside
