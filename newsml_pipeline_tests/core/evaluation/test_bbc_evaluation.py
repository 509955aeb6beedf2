"""On real BBC gold rows: the zero-shot / keyword baselines and the auto-labeler from the labeling
package, and `run_evaluation` end to end (a random tiny candidate must be blocked)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from newsml_pipeline.core.evaluation.baselines import baseline_predictions
from newsml_pipeline.core.evaluation.metrics import score_predictions
from newsml_pipeline.core.evaluation.report import run_evaluation
from newsml_pipeline.settings import load_config
from testkit.tiny_models import make_tiny_classifier_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gold_rows(bbc_rows: list[dict]) -> pl.DataFrame:
    # every 15th unique article: ~140 rows across all five classes
    rows = [r for r in bbc_rows if not r.get("duplicate_of")][::15]
    return pl.DataFrame(
        {
            "article_id": [str(r["id"]) for r in rows],
            "title": [r["title"] for r in rows],
            "text": [r["text"] for r in rows],
            "label": [r["label"] for r in rows],
        }
    )


@pytest.mark.parametrize(("kind", "floor"), [("zero_shot", 0.5), ("keywords", 0.3)])
def test_baselines_score_sensibly_on_bbc(gold_rows: pl.DataFrame, kind: str, floor: float) -> None:
    cfg = load_config()
    preds = baseline_predictions(gold_rows, kind=kind, labels_cfg=cfg.labels)
    s = score_predictions(gold_rows["label"].to_list(), preds.labels, labels=cfg.labels.names)
    assert len(preds.labels) == gold_rows.height
    assert floor < s.macro_f1 < 1.0, s.macro_f1


def test_run_evaluation_blocks_a_random_candidate(gold_rows: pl.DataFrame, tmp_path: Path) -> None:
    cfg = load_config()
    tiny = make_tiny_classifier_dir(tmp_path, cfg.labels.names)
    res = run_evaluation(
        gold_rows, cfg=cfg, candidate_model_dir=tiny, candidate_version="7", out_dir=tmp_path
    )
    assert set(res.scores) == {"candidate", "baseline", "labeler"}
    assert res.n_test == gold_rows.height
    assert not res.gate.passed
    assert not res.gate.checks["gain_over_baseline"]["passed"]
    assert res.scores["baseline"].macro_f1 > res.scores["candidate"].macro_f1
    assert 0 < res.scores["labeler"].coverage <= 1 and res.scores["labeler"].ece is not None
    assert (tmp_path / "confusion_candidate.png").exists()
    assert "candidate | 7 |" in res.summary_markdown()
