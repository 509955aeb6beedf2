"""The entity gate: a candidate ships only with min_gain over the pretrained pipeline on gold
sentences, every type above the floor, never below the champion, and enough gold sentences."""

from __future__ import annotations

from newsml_pipeline.core.entities.evaluation import changed_spans, decide, score_models
from newsml_pipeline.core.entities.gold import GoldSentence
from newsml_pipeline.core.entities.spans import CharSpan
from newsml_pipeline.entity_settings import EntityGateConfig

TYPES = ["PER", "LOC"]


class Fixed:
    """A recognizer answering fixed spans per text."""

    def __init__(self, answers: dict[str, list[CharSpan]]) -> None:
        self.answers = answers

    def predict(self, texts: list[str]) -> list[list[CharSpan]]:
        return [self.answers.get(t, []) for t in texts]


GOLD = [
    GoldSentence(f"s{i}", f"Ann Lee in Rome {i}", [CharSpan(0, 7, "PER"), CharSpan(11, 15, "LOC")])
    for i in range(20)
]
PERFECT = Fixed({g.text: g.entities for g in GOLD})
PER_ONLY = Fixed({g.text: g.entities[:1] for g in GOLD})  # micro F1 2/3, LOC F1 0


def _scores(**models) -> dict:
    return score_models(GOLD, models, types=TYPES)[0]


def test_gain_over_pretrained_passes_and_a_small_gain_blocks() -> None:
    cfg = EntityGateConfig(min_gain=0.05, min_type_f1=0.0, min_test_sentences=20)
    ok = decide(_scores(candidate=PERFECT, pretrained=PER_ONLY), n_sentences=20, types=TYPES, cfg=cfg)
    assert ok.passed and ok.checks["vs_pretrained"]["required"] == 2 / 3 + 0.05
    same = decide(_scores(candidate=PER_ONLY, pretrained=PER_ONLY), n_sentences=20, types=TYPES, cfg=cfg)
    assert not same.passed and "< pretrained" in same.reasons[0]


def test_type_floor_champion_and_too_few_gold_sentences_block() -> None:
    cfg = EntityGateConfig(min_gain=-1.0, min_type_f1=0.3, min_test_sentences=20)
    low = decide(_scores(candidate=PER_ONLY, pretrained=PER_ONLY), n_sentences=20, types=TYPES, cfg=cfg)
    assert not low.passed and low.checks["type_floor"]["below"] == {"LOC": 0.0}
    worse = decide(
        _scores(candidate=PER_ONLY, pretrained=PER_ONLY, champion=PERFECT),
        n_sentences=20,
        types=TYPES,
        cfg=cfg.model_copy(update={"min_type_f1": 0.0}),
    )
    assert not worse.passed and not worse.checks["vs_champion"]["passed"]
    few = decide({}, n_sentences=5, types=TYPES, cfg=cfg)
    assert not few.passed and "only 5 trusted sentences" in few.reasons[0]


def test_changed_spans_lists_disagreements_with_gold() -> None:
    _, preds = score_models(GOLD[:3], {"a": PER_ONLY, "b": PERFECT}, types=TYPES)
    rows = changed_spans(GOLD[:3], preds["a"], preds["b"], types=TYPES)
    assert len(rows) == 3
    assert rows[0]["pretrained"] == "Ann Lee [PER]" and rows[0]["candidate"] == "Ann Lee [PER]; Rome [LOC]"
    assert rows[0]["gold"] == rows[0]["candidate"]
