"""What labeled_articles shows a person in the UI about how it labelled."""

from __future__ import annotations

from newsml_pipeline.defs.labeling import _report_metadata


def test_expanded_keywords_and_label_model_are_readable_in_the_metadata() -> None:
    md = _report_metadata(
        {
            "class_distribution": {"Sci/Tech": 3, "World": 1},
            "coverage": 0.8,
            "label_model": "dawid_skene",
            "dependent_groups": [["zero_shot", "transductive"]],
            "expanded_keywords": {"Sci/Tech": ["chip", "software"], "World": []},
        }
    )
    table = md["expanded_keywords"]
    rows = {r.data["category"]: r.data for r in table.records}
    assert rows["Sci/Tech"] == {"category": "Sci/Tech", "terms_added": 2, "terms": "chip, software"}
    assert rows["World"]["terms_added"] == 0
    assert md["label_model"].value == "dawid_skene"
    assert md["dependent_groups"].data == [["zero_shot", "transductive"]]


def test_a_report_without_expansion_has_no_expanded_keywords_entry() -> None:
    md = _report_metadata({"class_distribution": {}, "coverage": 0.5})
    assert "expanded_keywords" not in md
