"""Feedback files: what is accepted, what is reported (with file:line), and which file wins."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

from newsml_pipeline.core.labeling.feedback import merge_gold, parse_feedback_dir

LABELS = ["business", "politics", "sport", "tech"]
KNOWN = pl.DataFrame(
    {
        "article_id": ["a1", "a2", "a3", "a4"],
        "url": [
            "https://news.example.com/business/a1",
            "https://news.example.com/sport/a2?page=2",
            None,
            "https://news.example.com/tech/a4",
        ],
    }
)


def _write(folder: Path, name: str, text: str, *, mtime: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text(text, encoding="utf-8")
    os.utime(p, (mtime, mtime))
    return p


def _parse(folder: Path):
    return parse_feedback_dir(folder, labels=LABELS, known_articles=KNOWN)


def test_missing_folder_is_no_feedback(tmp_path: Path) -> None:
    res = _parse(tmp_path / "nope")
    assert res.accepted.height == 0 and res.problems == []
    assert res.accepted.columns == ["article_id", "label", "source_file", "line", "received_at"]


def test_csv_and_jsonl_are_accepted_with_their_origin(tmp_path: Path) -> None:
    _write(tmp_path, "a.csv", "article_id,label\na1,Business\n a3 , sport\n", mtime=1000)
    _write(tmp_path, "b.jsonl", '{"article_id": "a4", "label": "tech"}\n', mtime=2000)
    res = _parse(tmp_path)
    assert res.problems == []
    rows = {r["article_id"]: r for r in res.accepted.to_dicts()}
    assert {k: v["label"] for k, v in rows.items()} == {"a1": "business", "a3": "sport", "a4": "tech"}
    assert (rows["a3"]["source_file"], rows["a3"]["line"]) == ("a.csv", 3)
    assert (rows["a4"]["source_file"], rows["a4"]["line"]) == ("b.jsonl", 1)
    assert rows["a4"]["received_at"].timestamp() == pytest.approx(2000)


def test_url_is_matched_after_canonicalization(tmp_path: Path) -> None:
    # Different case in the host, a tracking parameter, a fragment: still the same article.
    _write(
        tmp_path,
        "urls.csv",
        "url,label\n"
        "HTTPS://News.Example.com/sport/a2?utm_source=x&page=2#top,sport\n"
        "https://news.example.com/politics/unknown,politics\n"
        "not a url,politics\n",
        mtime=1000,
    )
    res = _parse(tmp_path)
    assert res.accepted.select("article_id", "label").rows() == [("a2", "sport")]
    assert len(res.problems) == 2
    assert res.problems[0].startswith("urls.csv:3: unknown article")
    assert "politics/unknown" in res.problems[0]
    assert res.problems[1].startswith("urls.csv:4: bad url") and "not a url" in res.problems[1]


def test_unknown_label_and_unknown_article_are_reported_with_line_and_content(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "fb.jsonl",
        '{"article_id": "a1", "label": "business"}\n'
        '{"article_id": "a2", "label": "weather"}\n'
        "\n"
        '{"article_id": "zzz", "label": "sport"}\n'
        '{"article_id": "a4"}\n',
        mtime=1000,
    )
    res = _parse(tmp_path)
    assert res.accepted["article_id"].to_list() == ["a1"]
    assert res.problems[0].startswith("fb.jsonl:2: unknown label 'weather'")
    assert '"a2"' in res.problems[0]
    assert res.problems[1].startswith("fb.jsonl:4: unknown article_id 'zzz'")
    assert res.problems[2].startswith("fb.jsonl:5: missing label")


def test_bad_json_line_loses_only_that_line(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "fb.jsonl",
        '{"article_id": "a1", "label": "business"}\n{"article_id": "a2", label: sport}\n[1, 2]\n'
        '{"article_id": "a4", "label": "tech"}\n',
        mtime=1000,
    )
    res = _parse(tmp_path)
    assert sorted(res.accepted["article_id"].to_list()) == ["a1", "a4"]
    assert res.problems[0].startswith("fb.jsonl:2: not valid JSON") and "label: sport" in res.problems[0]
    assert res.problems[1].startswith("fb.jsonl:3: expected a JSON object")


def test_missing_column_rejects_the_file_but_not_earlier_feedback(tmp_path: Path) -> None:
    _write(tmp_path, "1_good.csv", "article_id,label\na1,business\n", mtime=1000)
    _write(tmp_path, "2_bad.csv", "article_id,topic\na1,sport\n", mtime=2000)
    res = _parse(tmp_path)
    assert res.accepted.select("article_id", "label").rows() == [("a1", "business")]
    assert len(res.problems) == 1
    assert res.problems[0].startswith("2_bad.csv:1: header must have a 'label' column")


def test_empty_files_and_unsupported_files_are_reported(tmp_path: Path) -> None:
    _write(tmp_path, "empty.csv", "", mtime=1000)
    _write(tmp_path, "header_only.csv", "article_id,label\n", mtime=1000)
    _write(tmp_path, "empty.jsonl", "\n\n", mtime=1000)
    _write(tmp_path, "notes.txt", "a1 is sport", mtime=1000)
    res = _parse(tmp_path)
    assert res.accepted.height == 0
    text = "\n".join(res.problems)
    assert "empty.csv: empty file" in text
    assert "header_only.csv: no feedback rows" in text
    assert "empty.jsonl: empty file" in text
    assert "notes.txt: unsupported file type" in text
    assert len(res.problems) == 4


def test_csv_row_with_extra_fields_is_reported(tmp_path: Path) -> None:
    _write(tmp_path, "fb.csv", "article_id,label\na1,business,oops\n\na4,tech\n", mtime=1000)
    res = _parse(tmp_path)
    assert res.accepted["article_id"].to_list() == ["a4"]
    assert res.accepted["line"].to_list() == [4]
    assert res.problems == ["fb.csv:2: more fields than the header has columns: a1,business,oops"]


def test_later_file_overrides_earlier_by_mtime_then_name(tmp_path: Path) -> None:
    # Name order says z_old last, but it is older: mtime decides first.
    _write(tmp_path, "z_old.csv", "article_id,label\na1,business\na4,tech\n", mtime=1000)
    _write(tmp_path, "a_new.jsonl", '{"article_id": "a1", "label": "politics"}\n', mtime=2000)
    # Same mtime: name order decides (b after a).
    _write(tmp_path, "b_same.csv", "article_id,label\na4,sport\n", mtime=2000)
    res = _parse(tmp_path)
    assert res.files == ["z_old.csv", "a_new.jsonl", "b_same.csv"]
    labels = dict(res.accepted.select("article_id", "label").rows())
    assert labels == {"a1": "politics", "a4": "sport"}
    assert len(res.overridden) == 2
    assert "z_old.csv:2 (a1 → business) overridden by a_new.jsonl:1 (→ politics)" in res.overridden


def test_known_articles_must_have_the_columns(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="known_articles lacks columns"):
        parse_feedback_dir(tmp_path, labels=LABELS, known_articles=pl.DataFrame({"article_id": ["a1"]}))


def test_merge_gold_feedback_wins_and_conflicts_are_reported() -> None:
    raw_gold = pl.DataFrame(
        {"article_id": ["a1", "a2", "a3", "a5"], "gold_label": ["business", "sport", None, "tech"]}
    )
    feedback = pl.DataFrame(
        {
            "article_id": ["a1", "a2", "a3"],
            "label": ["politics", "sport", "tech"],
            "source_file": ["f.csv"] * 3,
            "line": [2, 3, 4],
        }
    )
    gold, conflicts = merge_gold(raw_gold, feedback)
    assert gold.rows() == [
        ("a1", "politics", "feedback"),
        ("a2", "sport", "feedback"),
        ("a3", "tech", "feedback"),
        ("a5", "tech", "source"),
    ]
    assert conflicts == [
        {
            "article_id": "a1",
            "feedback_label": "politics",
            "source_label": "business",
            "source_file": "f.csv",
            "line": 2,
        }
    ]


def test_merge_gold_rejects_duplicate_articles() -> None:
    raw_gold = pl.DataFrame({"article_id": ["a1"], "gold_label": ["sport"]})
    feedback = pl.DataFrame({"article_id": ["a1", "a1"], "label": ["sport", "tech"]})
    with pytest.raises(ValueError, match=r"feedback has several rows for articles \['a1'\]"):
        merge_gold(raw_gold, feedback)


def test_merge_gold_with_no_feedback_keeps_source_gold() -> None:
    raw_gold = pl.DataFrame({"article_id": ["a1", "a2"], "gold_label": ["sport", None]})
    empty = parse_feedback_dir(Path("/nonexistent-feedback"), labels=LABELS, known_articles=KNOWN).accepted
    gold, conflicts = merge_gold(raw_gold, empty)
    assert gold.rows() == [("a1", "sport", "source")] and conflicts == []
