"""bench/newsroom.py's story stream: the topic mix it claims, before and after the change."""

from __future__ import annotations

import collections
import importlib
import sys
from datetime import date
from pathlib import Path

import pytest

from newsml_pipeline_tests.conftest import corpora_dir

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def newsroom():  # noqa: ANN201
    corpora_dir()  # skips with a reason when ../shared is absent
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("newsroom")
    finally:
        sys.path.remove(str(BENCH))


def _shares(stories: list, days: range) -> dict[str, float]:
    got = collections.Counter(s.topic for s in stories if int(s.id[1:3]) in days)
    n = sum(got.values())
    return {t: c / n for t, c in got.items()}


def test_the_mix_is_mix_before_then_mix_after_and_no_story_repeats(newsroom) -> None:
    stories = newsroom.make_stories(
        start=date(2026, 11, 2), days=21, per_day=48, change_day=14, undated_share=0.0, seed=0
    )
    assert len({s.id.split("-", 2)[2] for s in stories}) == len(stories) == 21 * 48
    before, after = _shares(stories, range(1, 14)), _shares(stories, range(14, 22))
    total_b, total_a = sum(newsroom.MIX_BEFORE.values()), sum(newsroom.MIX_AFTER.values())
    # the days before the change follow MIX_BEFORE (earn 5/16), not an even draw (1/8)
    assert before["earn"] == pytest.approx(newsroom.MIX_BEFORE["earn"] / total_b, abs=0.04)
    assert before["acq"] == pytest.approx(newsroom.MIX_BEFORE["acq"] / total_b, abs=0.04)
    # grain's pool (38 stories) runs dry by the change: the other topics share its weight by theirs
    assert after.get("grain", 0.0) < 0.02
    wet = total_a - newsroom.MIX_AFTER["grain"]
    assert after["crude"] == pytest.approx(newsroom.MIX_AFTER["crude"] / wet, abs=0.05)
    assert after["acq"] == pytest.approx(newsroom.MIX_AFTER["acq"] / wet, abs=0.04)
