"""Drift benchmark: how fast river's ADWIN (as wired in core/monitoring) catches a shift, how often
it cries wolf, and how long one sensor tick takes.

(a) Synthetic Bernoulli error streams (the disagreement signal): error rate 0.10 -> 0.15 / 0.20 /
    0.30 / 0.50 at a known change point, many seeds: mean / median detection delay (articles after
    the change) and miss rate; false alarms per 10,000 stationary rows.
(b) A real topic shift: BBC articles scored by a BBC-trained classifier, then Reuters-21578
    articles, per signal (confidence at several powers, disagreement with an independent
    auto-labeler): delay, misses, false alarms before the change and per 10,000 stationary BBC rows.
(c) The sensor's time per tick for 10k new rows (evaluate_tick alone, and run_drift_tick including
    the DuckDB read).
(d) The pipeline's own streams, replayed day by day as the sensor sees them: the demo's (the
    bundled HuffPost sample, U.S. news / crime outside the schema from day 8) and the newsroom's
    (bench/newsroom.py's Reuters stream, mix change on day 14), each with a changed and a
    stationary (never-changing) control stream per seed, with and without a champion: per
    signal (confidence**3, disagreement, no_fit, label_mix) and config (default, the demo's), the delay in
    simulated hours from the change to the tick that saw it, and ticks with a false alarm.

    python bench/drift.py [--seeds 100] [--real-seeds 50] [--model-dir DIR] [--corpora PATH]
                          [--parts synthetic,real,streams,tick] [--stream-seeds 5]
                          [--newsroom-sample 1.0] [--cache DIR]

In (d) the stories come from the demo's and the newsroom's own make_stories; the auto-labeller
(label_articles, with each stream's schema) labels every distinct story once; the champion is a
stand-in (TF-IDF + logistic regression on the auto-labels of the days before the first weekly
retrain). --newsroom-sample keeps a hash-sampled share of the newsroom's stories (labelling its
long Reuters bodies is the slow part).

Without --model-dir the BBC-trained classifier is a TF-IDF + logistic-regression stand-in
(out-of-fold scores on BBC, so BBC confidences are those of unseen articles). The auto-label for
the disagreement signal comes from keyword matching with the default config's categories
(title hits weighted 3x, word boundaries; abstains when nothing matches or on a tie).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from provenance import provenance  # noqa: E402

from newsml_pipeline.core.data.warehouse import Warehouse  # noqa: E402
from newsml_pipeline.core.monitoring.drift import DriftMonitor, DriftStateStore, feed_values  # noqa: E402
from newsml_pipeline.core.monitoring.sensor_logic import evaluate_tick, run_drift_tick  # noqa: E402
from newsml_pipeline.settings import DEFAULT_CONFIG_PATH, DriftConfig, load_config  # noqa: E402
from testkit.corpora import CORPORA, read_jsonl_gz  # noqa: E402

log = logging.getLogger("bench.drift")
DEFAULT_CORPORA = CORPORA
STATIONARY_ROWS = 10_000


# ---------------------------------------------------------------- helpers


def summarize(delays: list[float | None], false_alarms: int, runs: int) -> dict:
    hit = [d for d in delays if d is not None]
    return {
        "runs": runs,
        "mean_delay": round(statistics.fmean(hit), 1) if hit else None,
        "median_delay": float(statistics.median(hit)) if hit else None,
        "p90_delay": float(np.percentile(hit, 90)) if hit else None,
        "miss_rate": round(1 - len(hit) / runs, 4),
        "false_alarms_before_change": false_alarms,
    }


def first_after(positions: list[int], change: int) -> tuple[int | None, int]:
    """(delay of the first detection at/after `change` or None, detections before it)."""
    before = sum(1 for p in positions if p < change)
    after = [p - change for p in positions if p >= change]
    return (after[0] if after else None), before


def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def print_table(title: str, header: list[str], rows: list[list]) -> None:
    print(f"\n{title}")
    widths = [max(len(str(h)), *(len(fmt(r[i])) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(fmt(v).ljust(w) for v, w in zip(r, widths, strict=True)))


# ---------------------------------------------------------------- (a) synthetic


def synthetic(cfg: DriftConfig, *, seeds: int, pre: int, post: int) -> list[dict]:
    out = []
    for p1 in (0.15, 0.20, 0.30, 0.50):
        delays, fa = [], 0
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            xs = np.concatenate([rng.random(pre) < 0.10, rng.random(post) < p1]).astype(float)
            mon = DriftMonitor(signals=("disagreement",), delta=cfg.delta, clock=cfg.clock)
            d, before = first_after([e.position for e in feed_values(mon, "disagreement", xs)], pre)
            delays.append(d)
            fa += before
        out.append({"effect": f"0.10 -> {p1:.2f}", **summarize(delays, fa, seeds)})
    stationary_alarms = 0
    for seed in range(seeds):
        rng = np.random.default_rng(10_000 + seed)
        mon = DriftMonitor(signals=("disagreement",), delta=cfg.delta, clock=cfg.clock)
        stationary_alarms += len(
            feed_values(mon, "disagreement", (rng.random(STATIONARY_ROWS) < 0.10).astype(float))
        )
    for r in out:
        r["false_alarms_per_10k_stationary"] = round(stationary_alarms / seeds, 4)
    return out


# ---------------------------------------------------------------- (b) real shift


def article_text(r: dict) -> str:
    return f"{r.get('title') or ''}\n{r.get('text') or ''}"


def keyword_labeler(titles: list[str], texts: list[str], categories) -> list[str | None]:
    """Argmax of keyword hits (title x3) per category; None when nothing matches or on a tie."""
    pats = [
        re.compile(r"\b(?:" + "|".join(re.escape(k.lower()) for k in [c.name, *c.keywords]) + r")\b")
        for c in categories
    ]
    out = []
    for title, text in zip(titles, texts, strict=True):
        t, b = (title or "").lower(), (text or "").lower()[:4000]
        scores = [3 * len(p.findall(t)) + len(p.findall(b)) for p in pats]
        best = max(scores)
        out.append(categories[scores.index(best)].name if best > 0 and scores.count(best) == 1 else None)
    return out


def score_tfidf(
    bbc: list[dict], reuters: list[dict], *, seed: int
) -> tuple[np.ndarray, np.ndarray, list[str], dict]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    x = [article_text(r) for r in bbc]
    y = [r["label"] for r in bbc]
    vec = TfidfVectorizer(sublinear_tf=True, min_df=2, max_features=50_000)
    xv = vec.fit_transform(x)
    clf = LogisticRegression(C=10.0, max_iter=2000)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    oof = cross_val_predict(clf, xv, y, cv=folds, method="predict_proba")
    clf.fit(xv, y)
    labels = list(clf.classes_)
    acc = float(np.mean(np.array(labels)[oof.argmax(1)] == np.array(y)))
    pr = clf.predict_proba(vec.transform([article_text(r) for r in reuters]))
    return (
        oof,
        pr,
        labels,
        {
            "scorer": "STAND-IN: TF-IDF + logistic regression (5-fold out-of-fold on BBC)",
            "bbc_accuracy": round(acc, 4),
        },
    )


def score_model_dir(
    model_dir: Path, bbc: list[dict], reuters: list[dict]
) -> tuple[np.ndarray, np.ndarray, list[str], dict]:
    from newsml_pipeline.core.training.model_io import load_classifier, predict_proba

    model, tok, labels = load_classifier(model_dir)
    t = time.perf_counter()
    pb = predict_proba(model, tok, [article_text(r) for r in bbc])
    pr = predict_proba(model, tok, [article_text(r) for r in reuters])
    acc = float(np.mean(np.array(labels)[pb.argmax(1)] == np.array([r["label"] for r in bbc])))
    info = {
        "scorer": f"fine-tuned classifier {model_dir} (BBC rows may include its training rows)",
        "bbc_accuracy": round(acc, 4),
        "scoring_seconds": round(time.perf_counter() - t, 1),
    }
    return pb, pr, labels, info


def stream_frame(conf: np.ndarray, label: np.ndarray, auto: list[str | None]) -> pl.DataFrame:
    n = len(conf)
    return pl.DataFrame(
        {
            "article_id": [f"r{i:07d}" for i in range(n)],
            "model_version": ["bench"] * n,
            "label": label.tolist(),
            "confidence": np.clip(conf, 0.0, 1.0),
            "auto_label": auto,
        },
        schema_overrides={"auto_label": pl.String},
    )


def real_shift(
    cfg: DriftConfig,
    *,
    corpora: Path,
    model_dir: Path | None,
    seeds: int,
    pre: int,
    post: int,
    powers: list[float],
) -> tuple[list[dict], dict]:
    labels_cfg = load_config(DEFAULT_CONFIG_PATH).labels
    bbc = [r for r in read_jsonl_gz(corpora / "bbc_news" / "bbc_news.jsonl.gz") if not r.get("duplicate_of")]
    reuters_all = [
        r
        for r in read_jsonl_gz(corpora / "reuters21578" / "reuters21578.jsonl.gz")
        if (r.get("text") or "").strip()
    ]
    rng = np.random.default_rng(0)
    reuters = [
        reuters_all[i] for i in rng.choice(len(reuters_all), size=min(3000, len(reuters_all)), replace=False)
    ]
    t = time.perf_counter()
    if model_dir is None:
        pb, pr, labels, info = score_tfidf(bbc, reuters, seed=0)
    else:
        pb, pr, labels, info = score_model_dir(model_dir, bbc, reuters)
    auto_b = keyword_labeler(
        [r.get("title") or "" for r in bbc], [r.get("text") or "" for r in bbc], labels_cfg.categories
    )
    auto_r = keyword_labeler(
        [r.get("title") or "" for r in reuters], [r.get("text") or "" for r in reuters], labels_cfg.categories
    )
    lab = np.array(labels)
    lb, lr = lab[pb.argmax(1)], lab[pr.argmax(1)]
    cb, cr = pb.max(1), pr.max(1)
    gold_b = np.array([r["label"] for r in bbc])
    cov_b = np.array([a is not None for a in auto_b])
    info.update(
        {
            "labeler": "keyword matching, default config categories (title x3, word boundaries)",
            "labeler_bbc_coverage": round(float(cov_b.mean()), 4),
            "labeler_bbc_accuracy_on_covered": round(
                float(np.mean(np.array(auto_b, dtype=object)[cov_b] == gold_b[cov_b])), 4
            ),
            "bbc_articles": len(bbc),
            "reuters_articles": len(reuters),
            "bbc_mean_confidence": round(float(cb.mean()), 4),
            "reuters_mean_confidence": round(float(cr.mean()), 4),
            "bbc_disagreement": round(_disagreement(lb, auto_b), 4),
            "reuters_disagreement": round(_disagreement(lr, auto_r), 4),
            "scoring_and_labeling_seconds": round(time.perf_counter() - t, 1),
        }
    )
    variants = [
        (f"confidence**{p:g}" if p != 1 else "confidence", "confidence", p, cfg.clock) for p in powers
    ]
    variants.append(("disagreement", "disagreement", 1.0, cfg.clock))
    if cfg.clock != 32:  # river's default clock, for comparison
        p = cfg.confidence_power
        variants.append((f"confidence**{p:g} (clock 32)", "confidence", p, 32))
        variants.append(("disagreement (clock 32)", "disagreement", 1.0, 32))
    results = []
    for name, signal, power, clock in variants:
        delays, fa_pre, fa_stat = [], 0, 0
        for seed in range(seeds):
            rs = np.random.default_rng(seed)
            ib = rs.choice(len(bbc), size=pre, replace=False)
            ir = rs.choice(len(reuters), size=post, replace=False)
            frame = pl.concat(
                [
                    stream_frame(cb[ib], lb[ib], [auto_b[i] for i in ib]),
                    stream_frame(cr[ir], lr[ir], [auto_r[i] for i in ir]),
                ]
            )
            mon = DriftMonitor(signals=(signal,), delta=cfg.delta, clock=clock, confidence_power=power)
            d, before = first_after([e.position for e in mon.update(frame)], pre)
            delays.append(d)
            fa_pre += before
            # stationary: 10,000 BBC rows drawn with replacement
            ist = rs.choice(len(bbc), size=STATIONARY_ROWS, replace=True)
            mon = DriftMonitor(signals=(signal,), delta=cfg.delta, clock=clock, confidence_power=power)
            fa_stat += len(mon.update(stream_frame(cb[ist], lb[ist], [auto_b[i] for i in ist])))
        row = {"signal": name, **summarize(delays, fa_pre, seeds)}
        row["false_alarms_per_10k_stationary"] = round(fa_stat / seeds, 4)
        row["config_default"] = clock == cfg.clock and (
            signal == "disagreement" or power == cfg.confidence_power
        )
        results.append(row)
    return results, info


def _disagreement(pred: np.ndarray, auto: list[str | None]) -> float:
    pairs = [(p, a) for p, a in zip(pred.tolist(), auto, strict=True) if a is not None]
    return sum(p != a for p, a in pairs) / max(len(pairs), 1)


# ---------------------------------------------------------------- (c) tick time


def tick_timing(cfg: DriftConfig, *, rows: int, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    t0 = datetime(2026, 11, 1, tzinfo=UTC)

    def frame(start: int) -> pl.DataFrame:
        wrong = rng.random(rows) < 0.1
        return pl.DataFrame(
            {
                "article_id": [f"a{start + i:09d}" for i in range(rows)],
                "model_version": ["1"] * rows,
                "label": ["sport"] * rows,
                "confidence": rng.beta(8, 2, rows),
                "auto_label": np.where(wrong, "politics", "sport").tolist(),
                "scored_at": [t0 + timedelta(seconds=start + i) for i in range(rows)],
            },
            schema_overrides={"scored_at": pl.Datetime("us", "UTC")},
        )

    tick_cfg = cfg.model_copy(update={"max_rows_per_tick": rows})
    now = datetime(2026, 11, 20, tzinfo=UTC)
    evaluate_s, full_s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        store = DriftStateStore(Path(tmp) / "evaluate.bin")
        for k in range(repeats):
            f = frame(k * rows)
            t = time.perf_counter()
            res = evaluate_tick(new_rows=f, state_store=store, drift_cfg=tick_cfg, now=now)
            evaluate_s.append(time.perf_counter() - t)
            assert res.stats["rows_consumed"] == rows
        wh = Warehouse(Path(tmp) / "w.duckdb")
        frames = [frame(k * rows) for k in range(repeats)]
        wh.append(
            "scored_articles", pl.concat(frames).with_columns(partition_date=pl.col("scored_at").dt.date())
        )
        store = DriftStateStore(Path(tmp) / "full.bin")
        cursor = None
        for _ in range(repeats):
            t = time.perf_counter()
            res = run_drift_tick(warehouse=wh, state_store=store, drift_cfg=tick_cfg, now=now, cursor=cursor)
            full_s.append(time.perf_counter() - t)
            cursor = res.new_cursor
            assert res.stats["rows_consumed"] == rows
        state_bytes = store.path.stat().st_size
    return {
        "rows_per_tick": rows,
        "repeats": repeats,
        "evaluate_tick_median_s": round(statistics.median(evaluate_s), 4),
        "evaluate_tick_max_s": round(max(evaluate_s), 4),
        "run_drift_tick_median_s": round(statistics.median(full_s), 4),
        "run_drift_tick_max_s": round(max(full_s), 4),
        "state_file_bytes": state_bytes,
    }


# ---------------------------------------------------------------- (d) the pipeline's streams
#
# The demo's stream (newsml demo: the bundled HuffPost sample, topic mix changing on day 8) and the
# newsroom's (bench/newsroom.py: Reuters, mix changing on day 14), built by their own
# make_stories, replayed day by day the way the drift sensor sees them: day D is scored at the
# 00:30 ingest of day D+1 and the sensor's next tick (00:30) consumes it, so a detection among
# day D's rows is seen (D + 1 - change_day) * 24 + 0.5 simulated hours after the change.


DAY_TICK_HOURS = 0.5  # the sensor tick that consumes day D runs at 00:30 of day D+1


@dataclass(frozen=True)
class StreamSpec:
    name: str
    days: int
    change_day: int
    champion_day: int  # the first day scored by the first deployed model (first weekly retrain)
    stories: Callable[[int, bool], list]  # (seed, changed) -> Story list


def demo_spec() -> StreamSpec:
    from newsml_pipeline.newsroom import demo

    opts = demo.DemoOptions()

    def stories(seed: int, changed: bool) -> list:
        o = demo.DemoOptions(seed=seed, change_day=opts.change_day if changed else opts.days + 1)
        return demo.make_stories(o)

    # the Monday 03:00 retrain on FIRST_RETRAIN_DAY deploys before that day is scored (00:30 next day)
    return StreamSpec("demo", opts.days, opts.change_day, demo.FIRST_RETRAIN_DAY, stories)


def newsroom_spec(per_day: int) -> StreamSpec:
    sys.path.insert(0, str(ROOT / "bench"))
    import newsroom  # bench/newsroom.py

    days, change_day = 21, 14

    def stories(seed: int, changed: bool) -> list:
        return newsroom.make_stories(
            start=newsroom.START,
            days=days,
            per_day=per_day,
            change_day=change_day if changed else days + 1,
            undated_share=0.0,
            seed=seed,
        )

    # newsroom.START is a Monday: the first weekly retrain that can train is the one on day 8
    return StreamSpec("newsroom", days, change_day, 8, stories)


def source_key(story) -> str:
    """The sample row a story re-dates (its id is d<day>-<k>-<source id>)."""
    return story.id.split("-", 2)[2]


def hash_kept(key: str, share: float) -> bool:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < share


def label_pool(stories: list, *, categories: list[dict], cache: Path | None) -> pl.DataFrame:
    """The auto-labeller over every distinct story once: key, auto_label, label confidence, class_fit.

    One label_articles batch over the pool (the pipeline fits the label model per day; class_fit,
    the no_fit signal's input, does not depend on the batch).
    """
    from newsml_pipeline.core.labeling.pipeline import label_articles
    from newsml_pipeline.settings import LabelsConfig

    if cache is not None and cache.exists():
        got = pl.read_parquet(cache)
        if set(got["key"]) >= {source_key(s) for s in stories}:
            return got
    by_key = {source_key(s): s for s in stories}
    keys = sorted(by_key)
    raw = pl.DataFrame(
        {
            "article_id": keys,
            "title": [by_key[k].title for k in keys],
            "text": [by_key[k].text for k in keys],
        }
    )
    cfg = LabelsConfig.model_validate({"categories": categories, "min_confidence": 0.5})
    t = time.perf_counter()
    labeled, _ = label_articles(raw, labels_cfg=cfg)
    log.warning("labelled %d pool articles in %.0f s", raw.height, time.perf_counter() - t)
    out = labeled.select(
        pl.col("article_id").alias("key"), pl.col("label").alias("auto_label"), "confidence", "class_fit"
    )
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        out.write_parquet(cache)
    return out


def stream_days(stories: list, pool: pl.DataFrame, *, sample: float) -> pl.DataFrame:
    """One row per (hash-kept) story in publication order: day, key, text, auto-label features."""
    kept = [s for s in stories if sample >= 1 or hash_kept(source_key(s), sample)]
    t0 = min(s.published for s in stories).date()
    frame = pl.DataFrame(
        {
            "day": [(s.published.date() - t0).days + 1 for s in kept],
            "key": [source_key(s) for s in kept],
            "article_id": [s.id for s in kept],
            "text": [f"{s.title}\n{s.text}" for s in kept],
        }
    )
    return frame.join(pool, on="key", how="left", maintain_order="left")


def champion_scores(frame: pl.DataFrame, *, champion_day: int, seed: int) -> pl.DataFrame:
    """label / confidence / model_version as the sensor sees them, with and without a champion.

    Without: the auto-labeller stands in (its label and confidence; where it abstained, its
    best guess is unknown here, so label = null and the confidence is the label model's).
    With: from champion_day on, a STAND-IN champion (TF-IDF + logistic regression trained on
    the auto-labels of the days before it) scores the rows.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    train = frame.filter((pl.col("day") < champion_day) & pl.col("auto_label").is_not_null())
    vec = TfidfVectorizer(sublinear_tf=True, min_df=2, max_features=50_000)
    clf = LogisticRegression(C=10.0, max_iter=2000, random_state=seed)
    clf.fit(vec.fit_transform(train["text"].to_list()), train["auto_label"].to_list())
    proba = clf.predict_proba(vec.transform(frame["text"].to_list()))
    champ = frame["day"].to_numpy() >= champion_day
    labels = np.array(clf.classes_, dtype=object)[proba.argmax(1)]
    return frame.with_columns(
        pl.Series("champ_label", labels.tolist(), dtype=pl.String),
        pl.Series("champ_conf", proba.max(1)),
        pl.Series("champ", champ),
    )


def replay(frame: pl.DataFrame, *, cfg: DriftConfig, signal: str, champion: bool) -> list[int]:
    """Days (1-based) whose tick raised a drift event on `signal`."""
    if champion:
        rows = frame.with_columns(
            model_version=pl.when("champ").then(pl.lit("champion")).otherwise(pl.lit("auto-labeller")),
            label=pl.when("champ").then("champ_label").otherwise(pl.col("auto_label").fill_null("?")),
            confidence=pl.when("champ").then("champ_conf").otherwise("confidence"),
        )
    else:
        rows = frame.with_columns(
            model_version=pl.lit("auto-labeller"),
            label=pl.col("auto_label").fill_null("?"),
        )
    rows = rows.select("day", "article_id", "model_version", "label", "confidence", "auto_label", "class_fit")
    mon = DriftMonitor(
        signals=(signal,),
        delta=cfg.delta,
        clock=cfg.clock,
        confidence_power=cfg.confidence_power,
        no_fit_below=cfg.no_fit_below,
    )
    fired = []
    for (day,), part in rows.group_by("day", maintain_order=True):
        if mon.update(part.drop("day")):
            fired.append(int(day))
    return fired


def pipeline_streams(
    specs: list[StreamSpec],
    cfgs: dict[str, DriftConfig],
    *,
    seeds: int,
    samples: dict[str, float],
    cache_dir: Path | None,
) -> tuple[list[dict], dict]:
    from newsml_pipeline.newsroom import demo

    schemas = {"demo": demo.SCHEMA}
    sys.path.insert(0, str(ROOT / "bench"))
    import newsroom

    schemas["newsroom"] = newsroom.SCHEMA
    rows, info = [], {}
    for spec in specs:
        sample = samples.get(spec.name, 1.0)
        streams = {(s, ch): spec.stories(s, ch) for s in range(seeds) for ch in (True, False)}
        pool_stories = [
            st for ss in streams.values() for st in ss if sample >= 1 or hash_kept(source_key(st), sample)
        ]
        cache = None if cache_dir is None else cache_dir / f"{spec.name}_pool_{sample:g}.parquet"
        t = time.perf_counter()
        pool = label_pool(pool_stories, categories=schemas[spec.name], cache=cache)
        frames = {
            k: champion_scores(stream_days(v, pool, sample=sample), champion_day=spec.champion_day, seed=k[0])
            for k, v in streams.items()
        }
        changed = [f for (s, ch), f in frames.items() if ch]
        pre = pl.concat([f.filter(pl.col("day") < spec.change_day) for f in changed])
        post = pl.concat([f.filter(pl.col("day") >= spec.change_day) for f in changed])
        info[spec.name] = {
            "days": spec.days,
            "change_day": spec.change_day,
            "champion_from_day": spec.champion_day,
            "hash_sample": sample,
            "rows_per_day": round(changed[0].height / spec.days, 1),
            "pool_articles": pool.height,
            "no_fit_share_before": round(
                float((pre["class_fit"] < next(iter(cfgs.values())).no_fit_below).mean()), 4
            ),
            "no_fit_share_after": round(
                float((post["class_fit"] < next(iter(cfgs.values())).no_fit_below).mean()), 4
            ),
            "auto_confidence_before": round(float(pre["confidence"].mean()), 4),
            "auto_confidence_after": round(float(post["confidence"].mean()), 4),
            "seconds": round(time.perf_counter() - t, 1),
        }
        for cfg_name, cfg in cfgs.items():
            for signal in SIGNAL_CHOICES:
                for champion in (False, True):
                    if signal == "disagreement" and not champion:
                        continue  # the auto-labeller cannot disagree with itself
                    delays, fa_pre, fa_stat, first_tick = [], 0, 0, 0
                    for seed in range(seeds):
                        fired = replay(frames[(seed, True)], cfg=cfg, signal=signal, champion=champion)
                        after = [d for d in fired if d >= spec.change_day]
                        fa_pre += sum(1 for d in fired if d < spec.change_day)
                        delay = None if not after else (after[0] + 1 - spec.change_day) * 24 + DAY_TICK_HOURS
                        delays.append(delay)
                        first_tick += delay is not None and delay <= 24 + DAY_TICK_HOURS
                        fa_stat += len(
                            replay(frames[(seed, False)], cfg=cfg, signal=signal, champion=champion)
                        )
                    hit = [d for d in delays if d is not None]
                    rows.append(
                        {
                            "stream": spec.name,
                            "config": cfg_name,
                            "signal": signal,
                            "champion": champion,
                            "delays_h": delays,
                            "median_delay_h": float(statistics.median(hit)) if hit else None,
                            "detected_at_first_tick": f"{first_tick}/{seeds}",
                            "false_alarm_ticks_before_change": fa_pre,
                            "false_alarm_ticks_stationary": fa_stat,
                        }
                    )
    return rows, info


SIGNAL_CHOICES = ("confidence", "disagreement", "no_fit", "label_mix")


# ---------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=100, help="seeds per synthetic effect size")
    ap.add_argument(
        "--real-seeds", type=int, default=50, help="random orders of the real BBC -> Reuters stream"
    )
    ap.add_argument("--pre", type=int, default=1000, help="BBC articles before the change (real shift)")
    ap.add_argument("--post", type=int, default=2000, help="Reuters articles after the change (real shift)")
    ap.add_argument("--powers", default="1,2,3,4", help="confidence powers to compare")
    ap.add_argument(
        "--model-dir", type=Path, default=None, help="saved HF classifier (core.training.model_io)"
    )
    ap.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    ap.add_argument("--tick-rows", type=int, default=10_000)
    ap.add_argument("--clock", type=int, default=None, help="override drift.clock (default: config)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "drift.json")
    ap.add_argument(
        "--parts",
        default="synthetic,real,streams,tick",
        help="comma-separated subset of synthetic (a), real (b), tick (c), streams (d)",
    )
    ap.add_argument("--stream-seeds", type=int, default=5, help="seeds of the demo / newsroom streams (d)")
    ap.add_argument(
        "--newsroom-per-day", type=int, default=48, help="stories a day in the newsroom stream (its default)"
    )
    ap.add_argument(
        "--newsroom-sample",
        type=float,
        default=1.0,
        help="hash-sampled share of the newsroom's stories that are labelled and replayed (d)",
    )
    ap.add_argument("--cache", type=Path, default=None, help="folder to keep the labelled pools of (d) in")
    args = ap.parse_args()
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    unknown = parts - {"synthetic", "real", "tick", "streams"}
    if unknown:
        ap.error(f"unknown --parts {sorted(unknown)}")
    logging.basicConfig(level=logging.WARNING)

    cfg = load_config(DEFAULT_CONFIG_PATH).drift
    if args.clock is not None:
        cfg = cfg.model_copy(update={"clock": args.clock})
    print(f"ADWIN delta={cfg.delta} clock={cfg.clock} confidence_power(default)={cfg.confidence_power:g}")

    results: dict = {}
    if "synthetic" in parts:
        results["synthetic"] = run_synthetic(cfg, args)
    if "real" in parts:
        results["real_shift"] = run_real(cfg, args)
    if "streams" in parts:
        results["pipeline_streams"] = run_streams(cfg, args)
    if "tick" in parts:
        results["tick"] = run_tick(cfg, args)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                **provenance(),
                "drift_config": cfg.model_dump(),
                **results,
            },
            indent=2,
        )
    )
    print(f"\nwrote {args.out}")


def run_streams(cfg: DriftConfig, args: argparse.Namespace) -> dict:
    from newsml_pipeline.newsroom import demo

    demo_cfg = cfg.model_copy(update=demo_drift_overrides(demo))
    # the shipped default, the demo's own config, and a looser delta to show what it would cost
    cfgs = {"default": cfg, "demo": demo_cfg, "delta 0.2": cfg.model_copy(update={"delta": 0.2})}
    t = time.perf_counter()
    rows, info = pipeline_streams(
        [demo_spec(), newsroom_spec(args.newsroom_per_day)],
        cfgs,
        seeds=args.stream_seeds,
        samples={"newsroom": args.newsroom_sample},
        cache_dir=args.cache,
    )
    print(
        f"\n(d) the pipeline's streams, {args.stream_seeds} seeds each, replayed tick by tick "
        "(delay = simulated hours from the change to the tick that saw it; first tick = +24.5 h)"
    )
    for name, i in info.items():
        print(f"    {name}: {i}")
    print(
        f"    configs: default delta={cfg.delta}; demo delta={demo_cfg.delta} (demo.py's drift block); "
        "delta 0.2 for comparison"
    )
    print_table(
        "    per stream, config and signal (FA = ticks with a detection: before the change / on the "
        "stationary control stream, summed over seeds)",
        [
            "stream",
            "config",
            "signal",
            "champion",
            "first tick",
            "median h",
            "delays h",
            "FA before",
            "FA stationary",
        ],
        [
            [
                r["stream"],
                r["config"],
                r["signal"],
                "yes" if r["champion"] else "no",
                r["detected_at_first_tick"],
                r["median_delay_h"],
                ",".join("-" if d is None else f"{d:g}" for d in r["delays_h"]),
                r["false_alarm_ticks_before_change"],
                r["false_alarm_ticks_stationary"],
            ]
            for r in rows
        ],
    )
    return {
        "info": info,
        "configs": {k: v.model_dump() for k, v in cfgs.items()},
        "rows": rows,
        "seconds": round(time.perf_counter() - t, 1),
        "notes": [
            "auto-labels: one label_articles batch over each stream pool (the pipeline fits the label "
            "model per day); class_fit (no_fit's input) does not depend on the batch",
            "champion: a stand-in, TF-IDF + logistic regression trained on the auto-labels of the days "
            "before the first weekly retrain, scoring from that day on",
            "without a champion the confidence stream is the label model's confidence on every row",
        ],
    }


def demo_drift_overrides(demo_module) -> dict:
    """The drift block demo.py writes into the demo's config."""
    from newsml_pipeline.newsroom.demo import DemoOptions

    class _Site:
        sections: list[str] = []

        def feed_url(self, section: str) -> str:
            return section

    return demo_module.demo_config(Path("/nonexistent"), _Site(), DemoOptions())["drift"]


def run_synthetic(cfg: DriftConfig, args: argparse.Namespace) -> dict:
    t = time.perf_counter()
    syn = synthetic(cfg, seeds=args.seeds, pre=2000, post=10_000)
    syn_s = time.perf_counter() - t
    print_table(
        f"(a) synthetic Bernoulli error streams, change after 2000 rows, 10000 rows after it, {args.seeds} seeds",
        ["effect", "mean delay", "median", "p90", "miss rate", "FA before change", "FA / 10k stationary"],
        [
            [
                r["effect"],
                r["mean_delay"],
                r["median_delay"],
                r["p90_delay"],
                r["miss_rate"],
                r["false_alarms_before_change"],
                r["false_alarms_per_10k_stationary"],
            ]
            for r in syn
        ],
    )
    return {"rows": syn, "seconds": round(syn_s, 1)}


def run_real(cfg: DriftConfig, args: argparse.Namespace) -> dict:

    powers = [float(p) for p in args.powers.split(",") if p.strip()]
    t = time.perf_counter()
    real, info = real_shift(
        cfg,
        corpora=args.corpora,
        model_dir=args.model_dir,
        seeds=args.real_seeds,
        pre=args.pre,
        post=args.post,
        powers=powers,
    )
    real_s = time.perf_counter() - t
    print(
        f"\n(b) real topic shift: {args.pre} BBC then {args.post} Reuters articles, {args.real_seeds} random orders"
    )
    for k, v in info.items():
        print(f"    {k}: {v}")
    print_table(
        "    per signal (delay = articles after the first Reuters article; * = shipped default)",
        ["signal", "mean delay", "median", "p90", "miss rate", "FA before change", "FA / 10k stationary BBC"],
        [
            [
                r["signal"] + (" *" if r["config_default"] else ""),
                r["mean_delay"],
                r["median_delay"],
                r["p90_delay"],
                r["miss_rate"],
                r["false_alarms_before_change"],
                r["false_alarms_per_10k_stationary"],
            ]
            for r in real
        ],
    )
    return {"info": info, "rows": real, "seconds": round(real_s, 1)}


def run_tick(cfg: DriftConfig, args: argparse.Namespace) -> dict:

    tick = tick_timing(cfg, rows=args.tick_rows, repeats=5)
    print_table(
        f"(c) sensor tick time for {args.tick_rows} new rows (signals {cfg.signals}), 5 ticks",
        ["step", "median s", "max s"],
        [
            [
                "evaluate_tick (detectors + state save)",
                tick["evaluate_tick_median_s"],
                tick["evaluate_tick_max_s"],
            ],
            ["run_drift_tick (+ DuckDB read)", tick["run_drift_tick_median_s"], tick["run_drift_tick_max_s"]],
        ],
    )
    print(f"    state file: {tick['state_file_bytes']} bytes")
    return tick


if __name__ == "__main__":
    main()
