"""Evaluation of an entity candidate on trusted sentences and the deployment gate.

Trusted = gold spans (IOB2/JSONL files named in `entities.gold_files`), never auto-labels. The
candidate, the pretrained pipeline mapped to the user's types (what a user has without this
pipeline) and the champion (if any) are scored with strict span F1 on the same sentences.

Gate: candidate micro F1 >= pretrained + gate.min_gain; every type's F1 >= gate.min_type_f1;
candidate >= champion - gate.max_drop_vs_champion; at least gate.min_test_sentences sentences.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from newsml_pipeline.core.entities.gold import GoldSentence
from newsml_pipeline.core.entities.metrics import span_scores
from newsml_pipeline.core.entities.spans import CharSpan
from newsml_pipeline.entity_settings import EntityGateConfig


@dataclass(frozen=True)
class EntityGateDecision:
    passed: bool
    reasons: list[str]
    checks: dict[str, Any] = field(default_factory=dict)


def score_models(
    gold: list[GoldSentence], models: dict[str, Any], *, types: list[str]
) -> tuple[dict[str, dict], dict[str, list]]:
    """(name -> span_scores on `gold`, name -> predicted spans per sentence) for each model that
    is not None."""
    texts = [g.text for g in gold]
    scores, preds = {}, {}
    for name, rec in models.items():
        if rec is None:
            continue
        preds[name] = rec.predict(texts)
        scores[name] = span_scores([g.entities for g in gold], preds[name], types=types)
    return scores, preds


def changed_spans(
    gold: list[GoldSentence], before: list, after: list, *, types: list[str], limit: int = 20
) -> list[dict[str, str]]:
    """Sentences where two models' spans differ: what each found and what gold says (for people)."""

    def show(text: str, spans: list[CharSpan]) -> str:
        return "; ".join(f"{text[s.start : s.end]} [{s.label}]" for s in sorted(spans) if s.label in types)

    rows = []
    for g, b, a in zip(gold, before, after, strict=True):
        if {s for s in b if s.label in types} != {s for s in a if s.label in types}:
            rows.append(
                {
                    "sentence": g.text[:200],
                    "pretrained": show(g.text, b),
                    "candidate": show(g.text, a),
                    "gold": show(g.text, g.entities),
                }
            )
            if len(rows) >= limit:
                break
    return rows


def decide(
    scores: dict[str, dict], *, n_sentences: int, types: list[str], cfg: EntityGateConfig
) -> EntityGateDecision:
    """The deployment rule over `score_models`' output (keys candidate, pretrained, champion?)."""
    reasons, checks = [], {}
    ok = True
    if n_sentences < cfg.min_test_sentences:
        return EntityGateDecision(
            False,
            [
                f"only {n_sentences} trusted sentences (gate.min_test_sentences {cfg.min_test_sentences}): "
                "add gold files (entities.gold_files) before anything can be deployed"
            ],
            {"n_sentences": n_sentences},
        )
    cand = scores["candidate"]["micro"]["f1"]
    base = scores["pretrained"]["micro"]["f1"]
    need = base + cfg.min_gain
    checks["vs_pretrained"] = {
        "candidate": cand,
        "pretrained": base,
        "required": need,
        "passed": cand >= need,
    }
    if cand >= need:
        reasons.append(f"micro F1 {cand:.3f} >= pretrained {base:.3f} + {cfg.min_gain}")
    else:
        ok = False
        reasons.append(f"micro F1 {cand:.3f} < pretrained {base:.3f} + {cfg.min_gain} = {need:.3f}")
    low = {
        t: scores["candidate"]["per_type"][t]["f1"]
        for t in types
        if scores["candidate"]["per_type"][t]["support"]
        and scores["candidate"]["per_type"][t]["f1"] < cfg.min_type_f1
    }
    checks["type_floor"] = {"min_type_f1": cfg.min_type_f1, "below": low, "passed": not low}
    if low:
        ok = False
        reasons.append("types below gate.min_type_f1 " + ", ".join(f"{t} {f:.3f}" for t, f in low.items()))
    if "champion" in scores:
        champ = scores["champion"]["micro"]["f1"]
        floor = champ - cfg.max_drop_vs_champion
        checks["vs_champion"] = {
            "candidate": cand,
            "champion": champ,
            "required": floor,
            "passed": cand >= floor,
        }
        if cand < floor:
            ok = False
            reasons.append(f"micro F1 {cand:.3f} < champion {champ:.3f} - {cfg.max_drop_vs_champion}")
        else:
            reasons.append(f"micro F1 {cand:.3f} >= champion {champ:.3f} - {cfg.max_drop_vs_champion}")
    else:
        reasons.append("no champion yet")
    return EntityGateDecision(ok, reasons, checks)
