"""The labelling page's entity mode in headless Chromium, started the way users start it (`newsml
label` with an `entities:` section): select text and press a type key to add or retype a span,
Enter to save, skip and undo; the store then holds exactly those span sets, which become trusted
sentences. Chromium as in test_labelling_page.py (skips with the reason when there is none)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsml_pipeline.core.entities.spans import CharSpan
from newsml_pipeline.core.entities.trusted import collect_trusted_sentences
from newsml_pipeline.core.labeling.feedback_store import store_path
from newsml_pipeline.core.labeling.span_store import SpanStore
from newsml_pipeline_tests.defs.conftest import write_config
from newsml_pipeline_tests.e2e.browser import chromium as find_chromium
from newsml_pipeline_tests.e2e.servers import start_label_page, stop_process
from newsml_pipeline_tests.e2e.test_labelling_page import CHROMIUM_ARGS
from newsml_pipeline_tests.entity_review_data import TYPES, write_entity_queue
from newsml_pipeline_tests.review_queue_data import make_home

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev extra) is not installed")

ENTITIES = {
    "types": [
        {"name": "PER", "description": "people", "spacy_labels": ["PERSON"]},
        {"name": "ORG", "description": "organisations", "spacy_labels": ["ORG"]},
        {"name": "LOC", "description": "places", "spacy_labels": ["GPE", "LOC", "FAC"]},
        {"name": "NEWS_ORG", "description": "news organisations", "gazetteer": ["Reuters"]},
    ]
}
# Select characters [a, b) of the sentence the way a mouse does: a DOM Range over the page's segments.
SELECT = """([a, b]) => {
  const segs = [...document.querySelectorAll('#sentence [data-start]')];
  const at = (pos) => {
    for (const el of segs) {
      const s = Number(el.dataset.start), t = el.firstChild;
      if (pos >= s && pos <= s + t.length) return [t, pos - s];
    }
    throw new Error('no segment holds ' + pos);
  };
  const r = document.createRange();
  r.setStart(...at(a)); r.setEnd(...at(b));
  const sel = getSelection(); sel.removeAllRanges(); sel.addRange(r);
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator:
    chromium = find_chromium()
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def label_server(newsml_home: Path, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    make_home(newsml_home, ["t1"], queue=["t1"])
    write_entity_queue(newsml_home)
    config = write_config(tmp_path / "config.yaml", entities=ENTITIES)
    env = {**os.environ, "NEWSML_HOME": str(newsml_home), "NEWSML_CONFIG": str(config)}
    url, proc = start_label_page(env, user="alice")
    try:
        yield url, proc
    finally:
        stop_process(proc)


def _marks(page) -> list[tuple[str, str]]:  # noqa: ANN001
    return [(m.inner_text(), m.get_attribute("data-label")) for m in page.locator("#sentence mark").all()]


def test_correct_spans_in_chromium_then_the_store_holds_trusted_sentences(
    browser, label_server: tuple[str, subprocess.Popen], newsml_home: Path
) -> None:
    url, proc = label_server
    expect = sync_api.expect
    topic = browser.new_page()
    topic.goto(url + "/")
    expect(topic.locator("#entity-link")).to_be_visible()
    topic.close()

    page = browser.new_page()
    page.goto(url + "/entities")
    sentence = page.locator("#sentence")
    expect(sentence).to_have_text("Angela Merkel met Reuters in Berlin.")
    expect(page.locator("#labeller")).to_have_text("alice")
    expect(page.locator("#remaining")).to_have_text("3")
    expect(page.locator("#proposals")).to_contain_text("gazetteer: Reuters [NEWS_ORG]")
    assert _marks(page) == [("Angela Merkel", "PER"), ("Berlin", "LOC")]
    assert [b.strip() for b in page.locator("#types button").all_inner_texts()] == [
        f"{i + 1}{t}" for i, t in enumerate(TYPES)
    ]
    # add a span: select "Reuters " (a trailing space is trimmed) and press 4 (NEWS_ORG)
    page.evaluate(SELECT, [18, 26])
    page.keyboard.press("4")
    assert _marks(page) == [("Angela Merkel", "PER"), ("Reuters", "NEWS_ORG"), ("Berlin", "LOC")]
    page.keyboard.press("Enter")
    expect(sentence).to_have_text("The Bank of England raised rates.")
    expect(page.locator("#status")).to_have_text("saved 3 spans (recorded)")
    # fix a boundary: "The Bank of England" as ORG replaces the proposed "Bank of England"
    page.evaluate(SELECT, [0, 19])
    page.locator("#types button", has_text="ORG").first.click()
    assert _marks(page) == [("The Bank of England", "ORG")]
    # retype by clicking the span and pressing a key, then remove it and add it back
    page.locator("#sentence mark").click()
    page.keyboard.press("3")
    assert _marks(page) == [("The Bank of England", "LOC")]
    page.keyboard.press("x")
    assert _marks(page) == []
    page.evaluate(SELECT, [0, 19])
    page.keyboard.press("2")
    page.locator("#save").click()
    expect(sentence).to_have_text("Rain fell in Leeds.")
    page.keyboard.press("s")  # skip the last one
    expect(page.locator("#message")).to_contain_text("Nothing left to correct")
    page.keyboard.press("u")  # undo the skip: it is back
    expect(sentence).to_have_text("Rain fell in Leeds.")
    expect(page.locator("#status")).to_contain_text("undid skip")
    expect(page.locator("#answered")).to_have_text("2")
    expect(page.locator("#error")).to_be_hidden()
    page.close()
    proc.kill()  # a crash loses nothing the page confirmed
    proc.wait(10)

    store = SpanStore(store_path(newsml_home / "feedback"))
    cur = {(a.article_id, a.sentence): (a.spans, a.labeller) for a in store.current_spans()}
    assert cur == {
        ("a1", 0): ([CharSpan(0, 13, "PER"), CharSpan(18, 25, "NEWS_ORG"), CharSpan(29, 35, "LOC")], "alice"),
        ("a2", 1): ([CharSpan(0, 19, "ORG")], "alice"),
    }
    assert store.spans_skipped_by("alice") == set()
    trusted = collect_trusted_sentences(files=[], source=[], page=store.current_spans(), types=TYPES)
    assert trusted.per_origin["page"] == 2 and not trusted.problems
