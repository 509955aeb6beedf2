"""Typed settings: where state lives (NEWSML_HOME) and the validated YAML config (NEWSML_CONFIG).

The YAML is the contract of DESIGN.md §3. Every section forbids unknown keys so that a typo
fails at load time with one message naming the key and the file, instead of being ignored.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from newsml_pipeline.core.labeling.silver import check_silver_functions  # noqa: E402
from newsml_pipeline.entity_settings import EntitiesConfig

DEFAULT_CONFIG_PATH = Path(__file__).parent / "config" / "default.yaml"
DEFAULT_REGISTERED_MODEL = "newsml-topic-classifier"


class ConfigError(ValueError):
    """The config file is missing, unreadable or invalid; the message names the file and keys."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- sources


class RssSource(_Strict):
    """An RSS/Atom/JSON feed; article pages are fetched and extracted unless fetch_pages is off."""

    name: str
    kind: Literal["rss"]
    url: str
    fetch_pages: bool = True
    max_items: int | None = Field(default=None, ge=1)


class LocalSource(_Strict):
    """A file or folder of .jsonl/.jsonl.gz/.parquet/.csv article records."""

    name: str
    kind: Literal["local"]
    path: str
    # A record's `label` becomes `gold_label` (trusted, used for evaluation).
    label_field: str = "label"
    # A record's gold entity spans [{start, end, label}] (offsets into `text`), and .iob2/.conll
    # files in the folder (one article per sentence): trusted entity rows, evaluation only.
    entities_field: str = "entities"
    iob_token_col: int = Field(default=1, ge=0)  # columns of the token and the IOB2 tag in .iob2/.conll
    iob_tag_col: int = Field(default=2, ge=0)


class HfSource(_Strict):
    """A Hugging Face `datasets` dataset, by local path (offline) or hub name (needs network)."""

    name: str
    kind: Literal["hf"]
    dataset: str
    split: str = "train"
    subset: str | None = None
    text_field: str = "text"
    title_field: str | None = "title"
    label_field: str | None = "label"
    max_rows: int | None = Field(default=None, ge=1)


Source = Annotated[RssSource | LocalSource | HfSource, Field(discriminator="kind")]


# ---------------------------------------------------------------- sections


class PartitionsConfig(_Strict):
    """Daily partitions by published date; start_date bounds what can be backfilled."""

    # Unset: `lookback_days` before today (UTC) when the config loads: the days that feeds and a
    # recently started store can hold, so the UI lists a range worth clicking (not years of empty
    # days). Set it to backfill an older dated source (an archive in the inbox).
    start_date: str = ""
    lookback_days: int = Field(default=90, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _recent_start(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("start_date"):
            lookback = int(data.get("lookback_days", cls.model_fields["lookback_days"].default))
            start = datetime.now(UTC).date() - timedelta(days=lookback)
            data = {**data, "start_date": start.isoformat()}
        return data

    @field_validator("start_date")
    @classmethod
    def _iso_date(cls, v: str) -> str:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
            raise ValueError("must be an ISO date YYYY-MM-DD")
        return v


# ---------------------------------------------------------------- schedules

# (low, high) of each cron field: minute, hour, day of month, month, day of week (7 = Sunday too).
_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_CRON_NAMES = (
    {},
    {},
    {},
    {m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)},
    {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())},
)
_CRON_ITEM = re.compile(r"^(?:\*|(\w+)(?:-(\w+))?)(?:/(\d+))?$")


def check_cron(v: str) -> str:
    """A 5-field cron expression (UTC) as Dagster schedules take it; ValueError says what is wrong.

    Checked at config load so a typo fails there, naming the key, not when the daemon ticks."""
    fields = v.split()
    if len(fields) != 5:
        raise ValueError(f"{v!r} must be a 5-field cron expression, e.g. '0 * * * *' (hourly)")
    for field, (low, high), names, what in zip(
        fields,
        _CRON_RANGES,
        _CRON_NAMES,
        ("minute", "hour", "day of month", "month", "day of week"),
        strict=True,
    ):
        for item in field.split(","):
            m = _CRON_ITEM.match(item.lower())
            if m is None or (m.group(3) is not None and int(m.group(3)) == 0):
                raise ValueError(f"{v!r}: {what} field {field!r} is not cron syntax")
            for value in (m.group(1), m.group(2)):
                if value is None:
                    continue
                n = names.get(value, int(value) if value.isdigit() else None)
                if n is None or not low <= n <= high:
                    raise ValueError(f"{v!r}: {what} {value!r} is outside {low}-{high}")
    return v


class SchedulesConfig(_Strict):
    """When the daily ingest and the weekly retrain run (cron, UTC); the crawl's is crawl.schedule."""

    # daily_ingest_schedule: the day that just ended, plus recent days that gained late articles.
    ingest: str = "30 0 * * *"
    # weekly_retrain_schedule: Mondays 03:00 (DESIGN.md's contract default).
    retrain: str = "0 3 * * 1"

    @field_validator("ingest", "retrain")
    @classmethod
    def _cron(cls, v: str) -> str:
        return check_cron(v)


class CrawlConfig(_Strict):
    concurrency: int = Field(default=16, ge=1, le=512)
    per_host_rps: float = Field(default=1.0, gt=0)
    # Read, write and connection-pool timeout of each request (httpx phases).
    timeout_s: float = Field(default=20.0, gt=0)
    # TCP/TLS connect timeout; null = timeout_s.
    connect_timeout_s: float | None = Field(default=None, gt=0)
    # Deadline of one request from send to last body byte: a server dripping bytes just under
    # the read timeout still ends here (not retried).
    total_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    # Retry-After (429/503) waits up to this long, holding the whole host; a longer demand gives
    # up on the host until then instead of sleeping.
    max_retry_after_s: float = Field(default=120.0, ge=0, le=86_400)
    # robots.txt Crawl-delay spaces a host's requests, but never more than this.
    max_crawl_delay_s: float = Field(default=30.0, ge=0, le=3600)
    retries: int = Field(default=3, ge=0, le=10)
    backoff_s: float = Field(default=0.5, ge=0)
    max_bytes: int = Field(default=5_000_000, ge=1024)
    max_redirects: int = Field(default=5, ge=0)
    allow_private_hosts: bool = False
    respect_robots: bool = True
    user_agent: str = "newsml-pipeline/0.1 (+https://github.com/newsml/newsml_pipeline)"
    # Processes for HTML extraction (the CPU-bound part); null = number of cores.
    extract_workers: int | None = Field(default=None, ge=1)
    near_duplicate_threshold: float = Field(default=0.9, gt=0, le=1)
    # A new article is compared with the stored signatures of this many days before it.
    near_duplicate_window_days: int = Field(default=14, ge=0)
    # crawl_job's cron (UTC): reads the sources into crawled_articles between the daily runs, so
    # items that roll off a feed before the day is ingested are kept. Hourly: a feed of 30 items
    # that publishes fewer than 30 an hour loses nothing (see README "How often the crawl runs").
    schedule: str = "0 * * * *"
    # The daily schedule also re-ingests any of the last `late_days` days for which the store
    # holds articles that its raw_articles partition lacks (late arrivals).
    late_days: int = Field(default=2, ge=0, le=31)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str) -> str:
        return check_cron(v)


_NON_WORD = re.compile(r"[\W_]+")


def category_slug(name: str) -> str:
    """The key form of a category name, for places that need one (MLflow metric names, file
    names): casefolded, each run of non-word characters one `_` (`Sci/Tech` -> `sci_tech`,
    `Economy & business` -> `economy_business`). A name with no word character at all gets
    its UTF-8 bytes in hex (`???` -> `x3f3f3f`). People always read the name, not the slug."""
    slug = _NON_WORD.sub("_", name.casefold()).strip("_")
    return slug or "x" + name.encode("utf-8").hex()


class Category(_Strict):
    """One class of the schema. `name` is the user's own (any non-empty string: `Sci/Tech`,
    `Economy & business`); gold labels match it exactly as written."""

    name: str
    description: str
    keywords: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _non_empty_name(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("category names must be non-empty")
        if v != v.strip():
            # A gold label "World" would silently never match a category "World ".
            raise ValueError(f"category name {v!r} has leading/trailing whitespace")
        return v


class LabelsConfig(_Strict):
    categories: list[Category]
    # Below this label-model confidence the article is left unlabelled (abstain).
    min_confidence: float = Field(default=0.5, ge=0, le=1)
    # Labeling functions, in vote-column order. `transductive` (class centres refined on the
    # batch's own embeddings) reads zero_shot's embeddings; `keyword_expansion` votes with terms
    # the batch itself associates with the seed keywords (listed in the labeling report).
    functions: list[
        Literal["keywords", "url_section", "entities", "zero_shot", "transductive", "keyword_expansion"]
    ] = Field(
        # transductive, not zero_shot, is the default embedding vote: it starts from the same
        # prototypes and was better alone and in the label model on short items (news_category
        # dev set: 0.869 vs 0.781 accuracy; bench/generality.py has the benchmark numbers).
        default_factory=lambda: ["keywords", "url_section", "entities", "transductive", "keyword_expansion"]
    )
    # Functions whose errors are correlated (same embeddings; one learned from the other's votes):
    # the Dawid-Skene label model gives each group one joint confusion instead of counting its
    # members as independent evidence. Names not in `functions` are ignored.
    dependent_functions: list[list[str]] = Field(
        default_factory=lambda: [["zero_shot", "transductive"], ["keywords", "keyword_expansion"]]
    )
    # Most terms keyword_expansion adds per category.
    keyword_expansion_terms: int = Field(default=20, ge=1, le=200)
    # Sentence-embedding model for zero-shot votes and the zero-shot baseline; null = packaged MiniLM.
    embedding_model: str | None = None
    # How votes are combined: learned per-function reliabilities (EM) or a plain majority vote.
    label_model: Literal["dawid_skene", "majority_vote"] = "dawid_skene"
    # Keyword hits in the title count this many times a body hit.
    title_weight: float = Field(default=3.0, ge=1)
    # Characters of body text (after the title) that spaCy NER reads; NER cost grows with length.
    entity_chars: int = Field(default=600, ge=50)
    # Tokens of title + lead embedded for zero-shot votes; embedding_bf16: bf16 autocast, taken only
    # where the CPU (avx512_bf16/AMX) or GPU computes bf16 natively, else fp32.
    embedding_max_tokens: int = Field(default=128, ge=16, le=512)
    embedding_bf16: bool = True
    # Batches of at least this many articles run spaCy (keywords + NER) in one worker process,
    # concurrently with the embedder; smaller ones (serving requests) in-process. null = never.
    spacy_worker_min_articles: int | None = Field(default=200, ge=1)
    # torch threads of the embedder; null = all cores, minus one while the spaCy worker runs
    # (measured: 2 threads beside the worker on 2 cores oversubscribe and run ~2x slower).
    embedding_threads: int | None = Field(default=None, ge=1)

    @field_validator("dependent_functions")
    @classmethod
    def _disjoint_groups(cls, v: list[list[str]]) -> list[list[str]]:
        known = {"keywords", "url_section", "entities", "zero_shot", "transductive", "keyword_expansion"}
        flat = [f for g in v for f in g]
        unknown = sorted(set(flat) - known)
        if unknown:
            raise ValueError(f"unknown labeling functions {unknown}; known: {sorted(known)}")
        if len(flat) != len(set(flat)):
            raise ValueError(f"a labeling function may be in one dependent group only, got {v}")
        return v

    @field_validator("categories")
    @classmethod
    def _unique(cls, v: list[Category]) -> list[Category]:
        names = [c.name for c in v]
        if len(v) < 2:
            raise ValueError("at least two categories are needed to classify anything")
        if len(set(names)) != len(names):
            raise ValueError(f"category names must be unique, got {names}")
        by_slug: dict[str, list[str]] = {}
        for n in names:
            by_slug.setdefault(category_slug(n), []).append(n)
        clash = {s: ns for s, ns in by_slug.items() if len(ns) > 1}
        if clash:
            # Their MLflow metrics (test_f1_<slug>) would overwrite each other: refuse, and say why.
            detail = "; ".join(f"{ns} all become {s!r}" for s, ns in clash.items())
            raise ValueError(
                f"category names must stay distinct as keys (case and punctuation ignored): {detail}"
            )
        return v

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.categories]

    @property
    def slugs(self) -> dict[str, str]:
        """Category name -> its key form (see `category_slug`), in config order."""
        return {c.name: category_slug(c.name) for c in self.categories}


class QualityConfig(_Strict):
    """Thresholds of the data-quality asset checks."""

    min_coverage: float = Field(default=0.5, ge=0, le=1)
    min_class_share: float = Field(default=0.05, ge=0, le=1)
    min_class_count: int = Field(default=5, ge=0)
    min_text_chars: int = Field(default=200, ge=0)
    max_text_chars: int = Field(default=100_000, ge=1)
    # WARN checks pass up to these shares of rows (a person should look beyond them).
    max_duplicate_share: float = Field(default=0.05, ge=0, le=1)
    max_conflict_share: float = Field(default=0.2, ge=0, le=1)  # auto-label vs gold/feedback disagreements
    max_bad_length_share: float = Field(default=0.05, ge=0, le=1)


class SplitsConfig(_Strict):
    window_days: int | None = Field(default=90, ge=1)
    val_fraction: float = Field(default=0.15, gt=0, lt=1)
    test_fraction: float = Field(default=0.15, gt=0, lt=1)
    min_per_class_train: int = Field(default=5, ge=1)
    min_per_class_eval: int = Field(default=2, ge=1)
    train_on_gold: bool = False
    # Drop auto-labelled train rows that a cross-fitted TF-IDF model disagrees with (likely
    # labeler mistakes): on BBC it took train labels from 0.909 to 0.971 accurate and LoRA's test
    # macro-F1 from 0.948 to 0.963 (bench/train.py --drop-label-issues).
    drop_label_issues: bool = True
    label_issue_folds: int = Field(default=5, ge=2)
    salt: str = "newsml"


class LoraConfig(_Strict):
    r: int = Field(default=16, ge=1)
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.1, ge=0, lt=1)
    # null = chosen per architecture (e.g. BERT: query, value).
    target_modules: list[str] | None = None
    # Adapt only the last N transformer layers (null = all): no backward pass below them.
    top_layers: int | None = Field(default=None, ge=1)


class SelfTrainingConfig(_Strict):
    """Optional rounds after the first training: the candidate relabels the confident part of the
    auto-labelled train rows and the next round trains on that (never val/test rows, never gold)."""

    rounds: int = Field(default=0, ge=0, le=5)  # 0 = off (measured: bench/self_training.py)
    min_confidence: float = Field(default=0.9, gt=0, le=1)  # candidate probability to take its label
    # At most this share of the train rows may change label in one round (most confident first).
    max_share: float = Field(default=0.2, gt=0, le=1)


class TrainingConfig(_Strict):
    base_model: str | None = None  # null = packaged all-MiniLM-L6-v2
    # 128 tokens (title + lead) carry a news topic: on BBC the LoRA candidate scored as well at
    # 128 as at 256 (test macro-F1 0.963, all layers, vs 0.955 with lora.top_layers: 3; one seed
    # each: bench/results/train_label_issues_len128.json, train_label_issues_len256_top3.json)
    # and trained 3x faster (53 vs 174 s/epoch there). At 256 on 2 CPU cores, lora.top_layers: 3
    # keeps an epoch < 3 min.
    max_length: int = Field(default=128, ge=8)
    # 5 epochs, stopping after 2 without a val gain: at 3 epochs / patience 1 the best val epoch was
    # the last one in every Reuters run of bench/generality.py (3 of 3) and one BBC run stopped
    # after a single flat epoch; the checkpoint with the best val score is the one kept.
    epochs: int = Field(default=5, ge=1)
    batch_size: int = Field(default=16, ge=1)
    learning_rate: float = Field(default=5e-4, gt=0)
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_ratio: float = Field(default=0.06, ge=0, lt=1)
    label_smoothing: float = Field(default=0.1, ge=0, lt=1)
    early_stopping_patience: int = Field(default=2, ge=0)
    class_weights: bool = True
    full_finetune: bool = False
    lora: LoraConfig = LoraConfig()
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    # auto = bf16 on GPUs that compute it natively (fp16 on older GPUs); fp32 on every CPU, measured:
    # bf16 CPU training was faster (bench/precision.py) but never better (bench/learners.py).
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    num_threads: int | None = Field(default=None, ge=1)  # CPU threads; null = all cores
    eval_batch_size: int = Field(default=32, ge=1)
    logging_steps: int = Field(default=10, ge=1)
    seed: int = 42
    self_training: SelfTrainingConfig = SelfTrainingConfig()


class MlflowConfig(_Strict):
    # One rule for every store (see Settings): the environment wins. MLFLOW_TRACKING_URI, when
    # set, beats this key; null and no MLFLOW_TRACKING_URI = sqlite under NEWSML_HOME.
    tracking_uri: str | None = None
    experiment: str = "newsml"
    registered_model: str = DEFAULT_REGISTERED_MODEL


class WarehouseConfig(_Strict):
    # null = the DuckDB file $NEWSML_HOME/warehouse.duckdb; a postgresql:// URL puts every table in
    # that database (same interface, core/data/dialect.py). The environment wins, as for MLflow:
    # NEWSML_WAREHOUSE_URL, when set, beats this key.
    # Keep the password out of the URL (PGPASSWORD, ~/.pgpass): the URL shows in the Dagster UI.
    url: str | None = None

    @field_validator("url")
    @classmethod
    def _postgres_only(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"warehouse.url must be a postgresql:// URL (or null for DuckDB), got {v!r}")
        return v


class GateConfig(_Strict):
    # What the test rows' labels are: gold (trusted: feedback, a labelled source), silver (held-out
    # articles labelled by functions independent of the baseline, core/labeling/silver.py), or
    # auto = gold when there are enough gold test rows, else silver. Every evaluation says which.
    evaluation: Literal["auto", "gold", "silver"] = "auto"
    silver_functions: list[str] = Field(default_factory=lambda: ["keywords", "url_section"])
    # A silver label needs at least this many of silver_functions voting, all for the same class.
    silver_min_votes: int = Field(default=1, ge=1)
    metric: Literal["macro_f1", "accuracy"] = "macro_f1"
    baseline: Literal["zero_shot", "keywords", "labeler"] = "zero_shot"
    min_gain_over_baseline: float = 0.05
    max_drop_vs_champion: float = 0.0
    min_class_f1: float = Field(default=0.3, ge=0, le=1)
    min_test_rows: int = Field(default=50, ge=1)
    bootstrap_samples: int = Field(default=1000, ge=100)
    seed: int = 0

    @field_validator("silver_functions")
    @classmethod
    def _independent(cls, v: list[str]) -> list[str]:
        return check_silver_functions(v)


class DriftConfig(_Strict):
    delta: float = Field(default=0.002, gt=0, lt=1)
    cooldown_hours: float = Field(default=24.0, ge=0)
    max_rows_per_tick: int = Field(default=50_000, ge=1)
    # confidence / disagreement watch the champion (the auto-labeller before any deployment);
    # no_fit watches the share of articles no class fits and label_mix the share of each
    # auto-label, both from the auto-labeller alone, so they see a new topic (no_fit) or a new
    # mix of the schema's topics (label_mix) before the first deployment too
    # (core/monitoring/signals.py; measured in bench/drift.py).
    signals: list[Literal["confidence", "disagreement", "no_fit", "label_mix"]] = Field(
        default_factory=lambda: ["confidence", "disagreement", "no_fit", "label_mix"]
    )
    # ADWIN checks for a cut every `clock` values. river defaults to 32 for throughput; checking
    # every value (1) caught shifts ~12 articles sooner at no measurable tick cost and with no
    # false alarm in 1M stationary values (bench/drift.py --clock).
    clock: int = Field(default=1, ge=1)
    # The confidence signal is fed as confidence**power: > 1 spreads the crowded high end and
    # detected a real topic shift faster with no extra false alarms (bench/drift.py).
    confidence_power: float = Field(default=3.0, gt=0)
    # A new champion has its own confidence profile: restart detectors when model_version changes.
    reset_on_model_change: bool = True
    # An article fits no class when its best cosine similarity to a class description (MiniLM,
    # the labeller's embedding) is below this. 0.12 on the demo's sample: 31 % of in-schema
    # stories vs 79 % of the U.S. news / crime stories no class describes (bench/drift.py).
    no_fit_below: float = Field(default=0.12, ge=-1, le=1)


class ServingConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=1, le=65535)
    max_body_bytes: int = Field(default=2_000_000, ge=1024)
    batch_size: int = Field(default=32, ge=1)
    reload_interval_s: float = Field(default=30.0, ge=0)
    # Inference precision of the served model. auto = at start and at every reload, the serving
    # process times each precision that (a) runs natively on its own CPU/GPU and (b) the
    # evaluation's quality rule allows (macro-F1 on the gold test rows within `auto_max_f1_loss`
    # of torch fp32, from the version's `newsml.precision.*` tags; without tags: the torch
    # precisions), on a fixed probe batch, and serves the fastest (core/serving/probe.py); the
    # speed tags from registration only order the probe. fp32 / bf16 / fp16 (CUDA) = torch
    # autocast; int8 = torch dynamic int8 (deprecated torch.ao path, CPU only); onnx / onnx-int8
    # = ONNX Runtime on the model.onnx / model.int8.onnx exported at registration.
    precision: Literal["auto", "fp32", "bf16", "fp16", "int8", "onnx", "onnx-int8"] = "auto"
    auto_max_f1_loss: float = Field(default=0.005, ge=0, le=1)
    # The auto probe: articles in its fixed batch, and the time it may take over all candidates
    # (a candidate not reached within it is not timed; at least the first one always is).
    precision_probe_articles: int = Field(default=4, ge=1, le=256)
    precision_probe_budget_s: float = Field(default=2.0, gt=0, le=60)
    # ONNX Runtime intra-op threads; null = the cores this process may use.
    onnx_threads: int | None = Field(default=None, ge=1)
    # Micro-batching: concurrent requests arriving within this window share one forward pass.
    batch_window_ms: float = Field(default=2.0, ge=0, le=1000)
    # A request still waiting for its answer after this long gets 503 (the model keeps going).
    request_timeout_s: float = Field(default=30.0, gt=0)
    # Load shedding: a request whose estimated wait in the micro-batch queue (articles queued
    # ahead / measured articles per second) exceeds this gets 503 with Retry-After at once, and
    # one that has already queued this long when its batch starts is answered 503 instead of run;
    # both are counted in /metrics (newsml_shed_requests_total). 0 = never shed (queue grows).
    queue_deadline_ms: float = Field(default=1000.0, ge=0)
    # Connections served at once (uvicorn limit_concurrency); beyond it new ones get 503.
    max_concurrency: int = Field(default=256, ge=1)
    # Name of the environment variable holding the bearer token (never the token itself in YAML).
    # Unset/empty = no auth, which is only allowed on a loopback host.
    token_env: str = "NEWSML_SERVING_TOKEN"
    # Tokens per article at serving time; null = training.max_length (what the gate evaluated).
    max_length: int | None = Field(default=None, ge=8)


class ReviewConfig(_Strict):
    """The review queue: articles most worth a person's label (core/labeling/review_queue.py)."""

    # Articles queued per day: one per cluster of the day's embeddings.
    daily_budget: int = Field(default=30, ge=1, le=1000)
    # Priority bonus for an article whose suggested class still needs trusted labels.
    coverage_weight: float = Field(default=0.5, ge=0)
    seed: int = 0


class AlertsConfig(_Strict):
    """Where failed-run alerts go besides the log (defs/alerts.py); all optional."""

    # POST target for a small JSON per failed run; keep secrets out of the file with
    # "${NEWSML_ALERT_WEBHOOK}" (an empty value disables the webhook). null = log only.
    webhook_url: str | None = None
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    # Base URL of the Dagster UI (e.g. http://127.0.0.1:3000); alerts then link the failed run.
    dagster_ui_url: str | None = None

    @field_validator("webhook_url", "dagster_ui_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"must be an http:// or https:// URL, got {v!r}")
        return v.rstrip("/")


class NewsmlConfig(_Strict):
    """The whole YAML file. Unknown top-level keys are errors."""

    sources: list[Source] = Field(default_factory=list)
    partitions: PartitionsConfig = Field(default_factory=PartitionsConfig)  # start: today - lookback_days
    crawl: CrawlConfig = CrawlConfig()
    schedules: SchedulesConfig = SchedulesConfig()
    labels: LabelsConfig
    quality: QualityConfig = QualityConfig()
    splits: SplitsConfig = SplitsConfig()
    training: TrainingConfig = TrainingConfig()
    mlflow: MlflowConfig = MlflowConfig()
    warehouse: WarehouseConfig = WarehouseConfig()
    gate: GateConfig = GateConfig()
    drift: DriftConfig = DriftConfig()
    serving: ServingConfig = ServingConfig()
    review: ReviewConfig = ReviewConfig()
    alerts: AlertsConfig = AlertsConfig()
    # The named-entity task (entity_settings.py); absent = off.
    entities: EntitiesConfig | None = None

    @model_validator(mode="after")
    def _silver_functions_run(self) -> NewsmlConfig:
        missing = [f for f in self.gate.silver_functions if f not in self.labels.functions]
        if missing and self.gate.evaluation != "gold":
            raise ValueError(
                f"gate.silver_functions {missing} are not in labels.functions {list(self.labels.functions)}: "
                "silver labels come from their votes"
            )
        return self

    @model_validator(mode="after")
    def _unique_source_names(self) -> NewsmlConfig:
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique; repeated: {dupes}")
        return self

    def source(self, name: str) -> RssSource | LocalSource | HfSource:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(f"no source named {name!r}; configured: {[s.name for s in self.sources]}")


# ---------------------------------------------------------------- loading

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_env(value: Any, env: dict[str, str]) -> Any:
    """Expand ${VAR} in string values (NEWSML_HOME is always defined) so paths can be portable."""
    if isinstance(value, str):

        def repl(m: re.Match[str]) -> str:
            if m.group(1) not in env:
                raise ConfigError(f"environment variable ${{{m.group(1)}}} used in the config is not set")
            return env[m.group(1)]

        return _ENV_RE.sub(repl, value)
    if isinstance(value, list):
        return [_expand_env(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _expand_env(v, env) for k, v in value.items()}
    return value


def _format_errors(path: Path, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"  {loc}: unknown key (typo?)")
        else:
            lines.append(f"  {loc}: {e['msg']}")
    return f"invalid config {path}:\n" + "\n".join(lines)


def newsml_home() -> Path:
    """NEWSML_HOME (default ./data): all runtime state lives under it."""
    return Path(os.environ.get("NEWSML_HOME", "data")).expanduser().resolve()


def config_path() -> Path:
    return Path(os.environ.get("NEWSML_CONFIG", str(DEFAULT_CONFIG_PATH))).expanduser().resolve()


def load_config(path: str | Path | None = None, *, home: Path | None = None) -> NewsmlConfig:
    """Load and validate a YAML config; raises ConfigError naming the file and the bad keys."""
    path = Path(path) if path is not None else config_path()
    home = home or newsml_home()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ConfigError(f"config file not found: {path}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    env = {**os.environ, "NEWSML_HOME": str(home)}
    try:
        raw = _expand_env(raw, env)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    try:
        return NewsmlConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_format_errors(path, e)) from None


class Settings(BaseModel):
    """Home + config together; what resources and the CLI pass around.

    Where a store can be named both by an environment variable and by a config key, the
    environment wins (NEWSML_WAREHOUSE_URL over warehouse.url, MLFLOW_TRACKING_URI over
    mlflow.tracking_uri): a deployment (a pod's env, CI) points a shared config elsewhere
    without editing it, the way MLflow and Dagster read their own variables.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    home: Path
    config_file: Path

    @classmethod
    def from_env(cls) -> Settings:
        return cls(home=newsml_home(), config_file=config_path())

    @cached_property
    def config(self) -> NewsmlConfig:
        return load_config(self.config_file, home=self.home)

    @property
    def warehouse_path(self) -> Path:
        """The DuckDB warehouse file (used unless a Postgres warehouse is configured)."""
        return self.home / "warehouse.duckdb"

    @property
    def warehouse_target(self) -> str:
        """NEWSML_WAREHOUSE_URL > warehouse.url > the DuckDB file: what `Warehouse(...)` opens."""
        env = os.environ.get("NEWSML_WAREHOUSE_URL")
        if env:
            if not env.startswith(("postgresql://", "postgres://")):
                raise ConfigError(f"NEWSML_WAREHOUSE_URL must be a postgresql:// URL, got {env!r}")
            return env
        return self.config.warehouse.url or str(self.warehouse_path)

    @property
    def feedback_dir(self) -> Path:
        return self.home / "feedback"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def crawl_state_path(self) -> Path:
        return self.home / "crawl_state.duckdb"

    def mlflow_tracking_uri(self) -> str:
        """MLFLOW_TRACKING_URI > mlflow.tracking_uri > sqlite under NEWSML_HOME (environment wins)."""
        env = os.environ.get("MLFLOW_TRACKING_URI")
        if env:
            return env
        return self.config.mlflow.tracking_uri or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def mlflow_artifact_root(self) -> Path:
        return self.home / "mlartifacts"
