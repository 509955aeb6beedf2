"""The labelling page in headless Chromium, started the way users start it (`newsml label`).

A tmp NEWSML_HOME holds raw_articles, labeled_articles and a review_queue; Playwright labels five
articles with keys and clicks, skips one, undoes one, then `label_feedback` (materialized with the
project's Definitions) and the input of `dataset_splits` must see exactly those answers.
Chromium is Debian's `/usr/bin/chromium` (installed with apt-get when missing, as root); Playwright
only drives it (`playwright install` is never run).
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline.core.labeling.feedback_store import FeedbackStore, store_path
from newsml_pipeline.core.labeling.page import LabellingService, Needs, create_app
from newsml_pipeline.definitions import build_definitions
from newsml_pipeline.defs.training import labeled_with_raw
from newsml_pipeline.settings import DEFAULT_CONFIG_PATH, Settings
from newsml_pipeline_tests.e2e.browser import chromium as find_chromium
from newsml_pipeline_tests.e2e.servers import free_port, start_label_page, stop_process, wait_healthy
from newsml_pipeline_tests.review_queue_data import make_home, write_queue

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev extra) is not installed")

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
QUEUE = ["q1", "q2", "q3", "q4", "q5", "q6", "q7"]


@pytest.fixture(scope="module")
def browser() -> Iterator:
    chromium = find_chromium()
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def label_server(newsml_home: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """`newsml label` as a real subprocess over a small NEWSML_HOME; yields (URL, process)."""
    make_home(newsml_home, [*QUEUE, "g1"], queue=QUEUE, gold={"g1": "sport"})
    env = {**os.environ, "NEWSML_HOME": str(newsml_home), "NEWSML_CONFIG": str(DEFAULT_CONFIG_PATH)}
    url, proc = start_label_page(env, user="alice")
    try:
        yield url, proc
    finally:
        stop_process(proc)


def _title(page, aid: str) -> None:
    sync_api.expect(page.locator("#title")).to_have_text(f"Title of {aid}")


def test_label_five_articles_in_chromium_then_label_feedback_and_splits_see_them(
    browser, label_server: tuple[str, subprocess.Popen], newsml_home: Path
) -> None:
    url, proc = label_server
    page = browser.new_page()
    page.goto(url + "/")
    expect = sync_api.expect
    _title(page, "q1")
    expect(page.locator("#lead")).to_have_text("Lead of q1.")
    assert page.locator("#link").get_attribute("href") == "https://news.example.com/story/q1"
    expect(page.locator("#labeller")).to_have_text("alice")
    expect(page.locator("#remaining")).to_have_text("7")

    page.keyboard.press("1")  # business
    _title(page, "q2")
    page.locator("#labels button", has_text="sport").click()
    _title(page, "q3")
    page.keyboard.press("5")  # tech
    _title(page, "q4")
    page.keyboard.press("s")  # skip q4
    _title(page, "q5")
    page.locator("#labels button", has_text="politics").click()
    _title(page, "q6")
    page.keyboard.press("u")  # undo q5's politics: q5 is back at the head of the queue
    _title(page, "q5")
    expect(page.locator("#status")).to_have_text("undid label politics")
    page.keyboard.press("2")  # entertainment
    _title(page, "q6")
    page.locator("#labels button", has_text="business").click()
    _title(page, "q7")
    expect(page.locator("#remaining")).to_have_text("1")
    expect(page.locator("#error")).to_be_hidden()
    # progress per class: two business labels from the page, sport = q2 + g1 (source gold)
    business = page.locator("#progress tbody tr", has_text="business")
    expect(business.locator("td").nth(1)).to_have_text("2")
    expect(page.locator("#progress tbody tr", has_text="sport").locator("td").nth(1)).to_have_text("2")
    page.close()
    # a crash loses nothing the page confirmed: kill the server without letting it shut down
    proc.kill()
    proc.wait(10)
    assert f"labelling page for alice on {url}/" in proc.stdout.read()

    expected = {"q1": "business", "q2": "sport", "q3": "tech", "q5": "entertainment", "q6": "business"}
    store = FeedbackStore(store_path(newsml_home / "feedback"))
    assert dict(store.current_labels().select("article_id", "label").iter_rows()) == expected
    assert {a.labeller for a in store.answers()} == {"alice"}
    assert store.skipped_by("alice") == {"q4"}

    settings = Settings(home=newsml_home, config_file=DEFAULT_CONFIG_PATH)
    job = build_definitions(settings).resolve_implicit_global_asset_job_def()
    result = job.get_subset(asset_selection={dg.AssetKey("label_feedback")}).execute_in_process(
        instance=dg.DagsterInstance.ephemeral()
    )
    assert result.success
    wh = Warehouse(settings.warehouse_path)
    fb = wh.read("label_feedback")
    got = {r["article_id"]: (r["label"], r["label_origin"]) for r in fb.to_dicts()}
    assert got == {**{k: (v, "feedback") for k, v in expected.items()}, "g1": ("sport", "source")}
    md = result.asset_materializations_for_node("label_feedback")[0].metadata
    assert md["from_labelling_page"].value == 5 and md["problems"].value == 0

    rows = labeled_with_raw(wh)
    seen = dict(
        rows.filter(rows["feedback_label"].is_not_null()).select("article_id", "feedback_label").iter_rows()
    )
    assert seen == {**expected, "g1": "sport"}


def test_any_category_name_is_shown_as_text_and_stored_exactly(browser, tmp_path: Path) -> None:
    """Names with markup and URL characters; a javascript: URL is never made a link."""
    labels = ["Sci/Tech", "Economy & business", '<img src=x onerror="window.pwned=1">World']
    wh = make_home(tmp_path, ["a1", "a2"])
    write_queue(wh, ["a1", "a2"], suggested=["Economy & business", None])
    with wh.transaction() as s:
        s.execute("UPDATE review_queue SET url = 'javascript:alert(1)' WHERE article_id = 'a1'")
    service = LabellingService(
        warehouse=wh,
        store=FeedbackStore(store_path(tmp_path / "feedback")),
        feedback_dir=tmp_path / "feedback",
        labels=labels,
        labeller="bob",
        needs=Needs(val_fraction=0.15, test_fraction=0.15, min_per_class_eval=2, min_test_rows=50),
    )
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, None)
        page = browser.new_page()
        page.goto(url + "/")
        _title(page, "a1")
        buttons = page.locator("#labels button")
        assert [t.strip() for t in buttons.all_inner_texts()] == [f"{i + 1}{n}" for i, n in enumerate(labels)]
        assert page.locator("#labels img").count() == 0 and page.evaluate("window.pwned") is None
        assert page.locator("#labels button.suggested").inner_text().endswith("Economy & business")
        assert page.locator("#link").get_attribute("href") is None and page.locator("#link").is_hidden()
        page.keyboard.press("3")
        _title(page, "a2")
        page.locator("#labels button", has_text="Sci/Tech").click()
        sync_api.expect(page.locator("#message")).to_contain_text("Nothing left to label")
        page.close()
    finally:
        server.should_exit = True
        thread.join(10)
    assert dict(service.store.current_labels().select("article_id", "label").iter_rows()) == {
        "a1": labels[2],
        "a2": "Sci/Tech",
    }
