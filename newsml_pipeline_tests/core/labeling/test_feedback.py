import polars as pl
import pytest

from newsml_pipeline.core.labeling.feedback import load_feedback, parse_feedback

LABELS = ["business", "sport", "tech"]


@pytest.fixture
def articles() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "article_id": ["a1", "a2", "a3", "a4"],
            "url": ["https://x.test/a1", "https://x.test/a2", None, None],
            "source": ["feed", "feed", "hf", "hf"],
            "gold_label": [None, None, "tech", "sport"],
        }
    )


def test_good_and_bad_lines_across_files(tmp_path, articles):
    fb = tmp_path / "feedback"
    fb.mkdir()
    (fb / "01_first.csv").write_text(
        "article_id,url,label\na1,,business\n,https://x.test/a2,Sport\nzz,,tech\na3,,weather\n"
    )
    (fb / "02_second.jsonl").write_text(
        '{"article_id": "a1", "label": "tech"}\n{not json\n[1, 2]\n{"label": "tech"}\n'
    )
    (fb / "03_broken.csv").write_bytes(b"article_id,label\n\xff\xfe\x00bad")
    (fb / "notes.txt").write_text("ignored: not a feedback file")
    res = load_feedback(fb, labels=LABELS, articles=articles)
    got = dict(zip(res.labels["article_id"], res.labels["label"], strict=True))
    # a1 corrected by the later file, a2 resolved by URL, a4 from source gold; a3's gold stays
    # because its feedback line had an unknown label.
    assert got == {"a1": "tech", "a2": "sport", "a3": "tech", "a4": "sport"}
    sources = dict(zip(res.labels["article_id"], res.labels["label_source"], strict=True))
    assert sources["a1"] == "feedback" and sources["a4"] == "source"
    problems = {p.where: p.kind for p in res.problems}
    assert problems["01_first.csv:4"] == "unknown_article"
    assert problems["01_first.csv:5"] == "unknown_label"
    assert problems["02_second.jsonl:1"] == "superseded"
    assert problems["02_second.jsonl:2"] == "unparsable"
    assert problems["02_second.jsonl:3"] == "unparsable"
    assert problems["02_second.jsonl:4"] == "missing_field"
    assert problems["03_broken.csv"] == "unreadable_file"
    assert res.files == ["01_first.csv", "02_second.jsonl", "03_broken.csv"]
    assert res.summary()["accepted"] == 4


def test_feedback_wins_over_source_gold_and_the_conflict_is_reported(tmp_path, articles):
    fb = tmp_path / "fb"
    fb.mkdir()
    (fb / "fix.csv").write_text("article_id,label\na4,business\n")
    res = load_feedback(fb, labels=LABELS, articles=articles)
    got = dict(zip(res.labels["article_id"], res.labels["label"], strict=True))
    assert got["a4"] == "business"
    conflict = [p for p in res.problems if p.kind == "conflict"]
    assert len(conflict) == 1 and "a4" in conflict[0].problem and conflict[0].where == "source:hf"


def test_csv_without_required_header_is_reported_not_raised(tmp_path, articles):
    path = tmp_path / "bad.csv"
    path.write_text("id,topic\na1,business\n")
    res = parse_feedback([path], labels=LABELS, articles=articles)
    assert res.labels.height == 0
    assert res.problems[0].kind == "missing_field" and "bad.csv" in str(res.problems[0])


def test_missing_folder_gives_only_source_gold(tmp_path, articles):
    res = load_feedback(tmp_path / "nope", labels=LABELS, articles=articles)
    assert sorted(res.labels["article_id"]) == ["a3", "a4"]
    assert res.problems == []
