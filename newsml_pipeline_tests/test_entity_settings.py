"""The `entities:` config section: off when absent, the shipped example loads, typos fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from newsml_pipeline.entity_settings import EntitiesConfig
from newsml_pipeline.settings import DEFAULT_CONFIG_PATH, ConfigError, load_config

ENTITIES_EXAMPLE = DEFAULT_CONFIG_PATH.parent / "entities.yaml"


def _with_entities(tmp_path: Path, entities: dict | None) -> Path:
    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    if entities is not None:
        data["entities"] = entities
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _example() -> dict:
    return yaml.safe_load(ENTITIES_EXAMPLE.read_text())["entities"]


def test_entities_off_when_absent(tmp_path: Path, newsml_home: Path) -> None:
    assert load_config(_with_entities(tmp_path, None)).entities is None


def test_shipped_example_section_loads(tmp_path: Path, newsml_home: Path) -> None:
    cfg = load_config(_with_entities(tmp_path, _example())).entities
    assert isinstance(cfg, EntitiesConfig)
    assert cfg.names[:3] == ["PER", "ORG", "LOC"]
    assert {"NEWS_ORG", "POLITICAL_ROLE", "FINANCIAL_METRIC"} <= set(cfg.names)
    assert cfg.spacy_map["GPE"] == "LOC" and cfg.spacy_map["PERSON"] == "PER"
    assert cfg.gate.min_gain == 0.05
    assert cfg.registered_model == "newsml-entity-recognizer"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda e: e["gate"].update(min_gian=0.1), "entities.gate.min_gian: unknown key"),
        (lambda e: e["types"][0].update(spacy_labels=["PERSN"]), "unknown pretrained spaCy labels ['PERSN']"),
        (lambda e: e["types"][1].update(spacy_labels=["PERSON"]), "PERSON maps to both PER and ORG"),
        (lambda e: e["types"].append(dict(e["types"][0])), "entity type names must be unique"),
        (lambda e: e["types"].append({"name": "X", "description": "x"}), "has no evidence"),
        (
            lambda e: e["types"].append({"name": "bad name", "description": "x", "gazetteer": ["a"]}),
            "must be a letter",
        ),
        (lambda e: e["training"].update(method="transformer_lora"), "needs training.base_model"),
    ],
)
def test_entities_typos_fail_with_the_key(tmp_path: Path, newsml_home: Path, edit, expected: str) -> None:
    ents = _example()
    edit(ents)
    with pytest.raises(ConfigError) as err:
        load_config(_with_entities(tmp_path, ents))
    assert expected in str(err.value)
