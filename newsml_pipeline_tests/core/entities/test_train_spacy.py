"""Fine-tuning the pretrained NER on auto-labels: the saved pipeline answers in the user's types,
learns a custom type from its sources, honours abstained tokens, and rehearsal keeps targets of
the labels no type maps."""

from __future__ import annotations

from pathlib import Path

from newsml_pipeline.core.entities.model import EntityRecognizer, load_pretrained
from newsml_pipeline.core.entities.spans import CharSpan
from newsml_pipeline.core.entities.train_spacy import (
    TrainingSentence,
    _example,
    internal_labels,
    label_map,
    train_spacy_ner,
)
from newsml_pipeline.entity_settings import EntitiesConfig

CFG = EntitiesConfig.model_validate(
    {
        "types": [
            {"name": "PER", "description": "people", "spacy_labels": ["PERSON"]},
            {"name": "LOC", "description": "places", "spacy_labels": ["GPE", "LOC"]},
            {"name": "WIRE", "description": "news agencies", "gazetteer": ["Reuters", "Interfax"]},
        ],
        "training": {"epochs": 12, "batch_size": 8, "dropout": 0.1},
    }
)


def _sentence(agency: str, person: str, place: str) -> TrainingSentence:
    text = f"{agency} reported that {person} arrived in {place} on Monday."
    a, p, c = text.index(agency), text.index(person), text.index(place)
    m = text.index("Monday")
    return TrainingSentence(
        text,
        [
            CharSpan(a, a + len(agency), "WIRE"),
            CharSpan(p, p + len(person), "PER"),
            CharSpan(c, c + len(place), "LOC"),
        ],
        rehearsal=[CharSpan(m, m + 6, "DATE")],
    )


def test_internal_labels_reuse_pretrained_rows() -> None:
    assert internal_labels(CFG) == {"PER": "PERSON", "LOC": "GPE", "WIRE": "WIRE"}
    assert label_map(CFG) == {"PERSON": "PER", "GPE": "LOC", "LOC": "LOC", "WIRE": "WIRE"}


def test_examples_mark_abstained_tokens_missing_and_rehearse_only_when_asked() -> None:
    nlp = load_pretrained()
    s = _sentence("Reuters", "John Smith", "Paris")
    s = TrainingSentence(
        s.text,
        s.entities,
        missing=[(s.text.index("arrived"), s.text.index("arrived") + 7)],
        rehearsal=s.rehearsal,
    )
    ex = _example(nlp, s, internal_labels(CFG), rehearse=True)
    tags = dict(zip([t.text for t in ex.reference], ex.get_aligned_ner(), strict=True))
    assert tags["Reuters"] == "U-WIRE" and tags["John"] == "B-PERSON" and tags["Paris"] == "U-GPE"
    assert tags["arrived"] is None  # missing: no loss
    assert tags["Monday"] == "U-DATE"
    mixed = _example(nlp, s, internal_labels(CFG), rehearse=False)
    tags = dict(zip([t.text for t in mixed.reference], mixed.get_aligned_ner(), strict=True))
    assert tags["Monday"] == "O"


def test_fine_tune_learns_a_custom_type_and_saves_a_pipeline(tmp_path: Path) -> None:
    people = ["John Smith", "Maria Garcia", "Ahmed Khan", "Li Wei", "Anna Novak", "Peter Brown"]
    places = ["Paris", "Berlin", "Madrid", "Cairo", "Tokyo", "Lima"]
    rows = [_sentence(a, p, c) for a in ("Reuters", "Interfax") for p in people for c in places[:3]]
    res = train_spacy_ner(rows, CFG, seed=0)
    assert res.n_sentences == len(rows) and len(res.losses) == 12
    assert res.losses[-1] < res.losses[0]
    path = res.recognizer.save(tmp_path / "model")
    rec = EntityRecognizer.load(path)
    text = "Reuters reported that Li Wei arrived in Lima on Friday."
    (spans,) = rec.predict([text])
    got = {(text[s.start : s.end], s.label) for s in spans}
    assert ("Reuters", "WIRE") in got
    assert ("Li Wei", "PER") in got
    assert {s.label for s in spans} <= {"PER", "LOC", "WIRE"}  # DATE and other model labels not reported
