"""Silver labels come only from functions independent of the zero-shot baseline."""

import json

import pytest

from newsml_pipeline.core.labeling.silver import check_silver_functions, silver_labels
from newsml_pipeline.settings import ConfigError, load_config

LABELS = ["business", "sport"]


def _votes(**v) -> str:
    return json.dumps({"keywords": None, "url_section": None, "zero_shot": None, "entities": None} | v)


def test_agreement_rule() -> None:
    votes = [
        _votes(keywords="sport", zero_shot="business"),  # the baseline's vote never counts
        _votes(keywords="sport", url_section="business"),  # independent functions disagree
        _votes(zero_shot="sport", entities="sport"),  # no independent vote
        _votes(keywords="business", url_section="business"),
        _votes(keywords="politics"),  # outside the schema = no vote
        None,
    ]
    got = silver_labels(votes, functions=["keywords", "url_section"], min_votes=1, labels=LABELS)
    assert got == ["sport", None, None, "business", None, None]
    strict = silver_labels(votes, functions=["keywords", "url_section"], min_votes=2, labels=LABELS)
    assert strict == [None, None, None, "business", None, None]


def test_the_baseline_and_its_students_are_refused() -> None:
    with pytest.raises(ValueError, match="zero_shot"):
        check_silver_functions(["keywords", "zero_shot"])
    with pytest.raises(ValueError, match="entities"):
        check_silver_functions(["entities"])


def test_config_refuses_dependent_silver_functions(tmp_path) -> None:
    cfg = tmp_path / "c.yaml"
    base = load_config(None).model_dump(mode="json")
    base["gate"]["silver_functions"] = ["zero_shot"]
    import yaml

    cfg.write_text(yaml.safe_dump(base))
    with pytest.raises(ConfigError, match="cannot make silver labels"):
        load_config(cfg)
