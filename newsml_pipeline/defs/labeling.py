"""`labeled_articles`: auto-labels per day (weak supervision, no hand labelling)."""

import logging
import warnings
from datetime import date
from typing import Any

import dagster as dg
import polars as pl

from newsml_pipeline.core.data.quality import (
    check_class_balance,
    check_coverage,
    check_duplicates,
    check_label_conflicts,
    check_text_lengths,
)
from newsml_pipeline.core.data.schema import LABELED_ARTICLES, conform
from newsml_pipeline.core.labeling.pipeline import label_articles
from newsml_pipeline.core.labeling.spacy_stage import spacy_worker_for
from newsml_pipeline.core.labeling.trusted import collect_trusted_labels
from newsml_pipeline.defs.metadata import (
    metadata_table,
    partition_check_evaluation,
    quality_check_result,
    scoped_check_result,
)
from newsml_pipeline.defs.placement import GPU_STEP, LIGHT_STEP, model_step_pool
from newsml_pipeline.defs.resources import NewsmlSettings, WarehouseResource
from newsml_pipeline.defs.retries import TRANSIENT_RETRY, retry_transient_only

log = logging.getLogger(__name__)

# Bump by hand when a change here (or in the core code its assets call) changes what they compute:
# the Dagster UI then marks the assets as stale because their code version changed.
CODE_VERSION = "2"

TABLE = "labeled_articles"
FEEDBACK_TABLE = "label_feedback"


# Warnings a person should look at; none of them makes a day's labels unusable on its own.
# (A class too small to train on is checked, blocking, on dataset_splits.)
LABEL_CHECKS = ["coverage", "class_balance", "duplicates", "label_conflicts", "text_lengths"]


@dg.asset(
    name=FEEDBACK_TABLE,
    group_name="labeling",
    op_tags=LIGHT_STEP,
    retry_policy=TRANSIENT_RETRY,  # network / shared-service faults (defs/retries.py)
    deps=[dg.AssetKey("raw_articles")],
    kinds={"duckdb"},
    code_version=CODE_VERSION,
    description=(
        "Trusted labels: answers given on the labelling page (`newsml label`, stored in "
        "$NEWSML_HOME/feedback/labels.sqlite) and human corrections dropped in $NEWSML_HOME/feedback/ "
        "(.csv/.jsonl with article_id or url, and label), merged with gold labels carried by sources. "
        "Feedback wins over source gold; a page answer wins over a file line for the same article (it is "
        "newer). Rebuilt each time, so a bad file never destroys earlier feedback: its lines are reported, "
        "the rest kept."
    ),
)
@retry_transient_only
def label_feedback(
    context: dg.AssetExecutionContext, newsml: NewsmlSettings, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    settings = newsml.settings
    wh = warehouse.get()
    known = (
        wh.query("SELECT article_id, url, gold_label FROM raw_articles")
        if wh.table_exists("raw_articles")
        else pl.DataFrame(schema={"article_id": pl.String(), "url": pl.String(), "gold_label": pl.String()})
    )
    trusted = collect_trusted_labels(
        known=known, feedback_dir=settings.feedback_dir, labels=settings.config.labels.names
    )
    gold, conflicts, problems = trusted.gold, trusted.conflicts, trusted.problems
    wh.replace_table(FEEDBACK_TABLE, gold)
    for p in problems:
        context.log.warning("feedback problem: %s", p)
    origins = dict(gold.group_by("label_origin").len().iter_rows()) if len(gold) else {}
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(gold)),
            "from_feedback_files": trusted.from_files,
            "from_labelling_page": dg.MetadataValue.int(trusted.from_page),
            "from_source_gold": origins.get("source", 0),
            "files": dg.MetadataValue.json([str(f) for f in trusted.files]),
            "problems": dg.MetadataValue.int(len(problems)),
            "problem_lines": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems[:50]) or "none"),
            "overridden_entries": dg.MetadataValue.int(len(trusted.overridden)),
            "feedback_vs_source_conflicts": dg.MetadataValue.int(len(conflicts)),
            "class_distribution": dg.MetadataValue.json(
                dict(gold.group_by("label").len().iter_rows()) if len(gold) else {}
            ),
        }
    )


def _feedback_frame(wh) -> pl.DataFrame | None:
    if not wh.table_exists(FEEDBACK_TABLE):
        return None
    return wh.query(f"SELECT article_id, label FROM {FEEDBACK_TABLE}")


def _report_metadata(report: dict[str, Any]) -> dict[str, Any]:
    """Flatten the labeler's report into metadata people can read (and plot over time)."""
    md: dict[str, Any] = {"class_distribution": dg.MetadataValue.json(report.get("class_distribution", {}))}
    if report.get("n_articles", 1) and report.get("coverage") is not None:  # no coverage of nothing
        md["coverage"] = dg.MetadataValue.float(float(report["coverage"]))
    if report.get("accuracy_vs_gold") is not None:
        md["accuracy_vs_gold"] = dg.MetadataValue.float(float(report["accuracy_vs_gold"]))
        md["gold_rows"] = dg.MetadataValue.int(int(report.get("gold_rows", 0)))
        md["accuracy_vs_gold_per_class"] = dg.MetadataValue.json(report.get("accuracy_vs_gold_per_class", {}))
    funcs = report.get("functions") or {}
    if funcs:
        rows = [{"function": name} | {k: v for k, v in stats.items()} for name, stats in funcs.items()]
        md["labeling_functions"] = metadata_table(rows)
    if report.get("articles_per_s") is not None:
        md["articles_per_s"] = dg.MetadataValue.float(float(report["articles_per_s"]))
    if report.get("label_model"):
        md["label_model"] = dg.MetadataValue.text(str(report["label_model"]))
    if report.get("dependent_groups"):
        md["dependent_groups"] = dg.MetadataValue.json(report["dependent_groups"])
    expanded = report.get("expanded_keywords")
    if expanded:
        # The terms keyword_expansion learned from the corpus, so a person can read (and veto
        # by editing the schema) what the labeler now votes with.
        md["expanded_keywords"] = metadata_table(
            [
                {"category": name, "terms_added": len(terms), "terms": ", ".join(terms)}
                for name, terms in expanded.items()
            ],
            width=1000,
        )
    return md


def _partitioned_check_specs(partitions: dg.PartitionsDefinition) -> list[dg.AssetCheckSpec]:
    """LABEL_CHECKS as per-day checks (Dagster marks partitioned checks "preview": said once here,
    not on every `dg check defs`)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
        return [dg.AssetCheckSpec(name, asset=TABLE, partitions_def=partitions) for name in LABEL_CHECKS]


def build_labeling_assets(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        name=TABLE,
        group_name="labeling",
        op_tags=GPU_STEP,
        retry_policy=TRANSIENT_RETRY,  # network / shared-service faults (defs/retries.py)
        partitions_def=partitions,
        deps=[dg.AssetKey("raw_articles"), dg.AssetKey(FEEDBACK_TABLE)],
        # per-day checks: each result is recorded on the day (partition) it checked
        check_specs=_partitioned_check_specs(partitions),
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"duckdb", "spacy", "pytorch"},
        code_version=CODE_VERSION,
        pool=model_step_pool(TABLE),  # the sentence embedder uses CUDA when there is one
        description=(
            "Auto-labels for the day's articles: keyword, URL-section, entity-profile and embedding "
            "zero-shot labeling functions combined by a label model with learned accuracies. "
            "label is null (abstain) below labels.min_confidence; votes keeps each function's vote."
        ),
        tags={"layer": "silver"},
    )
    @retry_transient_only
    def labeled_articles(
        context: dg.AssetExecutionContext, newsml: NewsmlSettings, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        cfg = newsml.config
        wh = warehouse.get()
        feedback = _feedback_frame(wh)
        days = sorted(date.fromisoformat(k) for k in context.partition_keys)
        written = []
        raws = []
        report: dict[str, Any] = {}
        day_rows = {day: wh.read("raw_articles", where="partition_date = ?", params=[day]) for day in days}
        largest = max((len(r) for r in day_rows.values()), default=0)
        # One spaCy worker for every day of the step, owned by this block: stopped when the step
        # ends, killed if it fails or is cancelled (a step process never waits on it at exit).
        with spacy_worker_for(largest, cfg.labels) as worker:
            for day, raw in day_rows.items():
                raws.append(raw)
                labeled, report = label_articles(
                    raw, labels_cfg=cfg.labels, feedback=feedback, spacy_worker=worker
                )
                rows = conform(labeled.drop("gold_label", strict=False), LABELED_ARTICLES, table=TABLE)
                wh.replace_partition(TABLE, rows, partition_column="partition_date", partition_key=day)
                context.log.info(
                    "%s: labelled %d articles, coverage %s", day, len(rows), report.get("coverage")
                )
                written.append(rows)
        all_rows = pl.concat(written) if written else pl.DataFrame(schema=LABELED_ARTICLES)
        if len(days) > 1:  # a multi-day backfill: report over all days, not only the last one
            last = report
            report = {
                "class_distribution": dict(all_rows.drop_nulls("label").group_by("label").len().iter_rows())
            }
            # Per-run facts that are not sums over days: those of the last day labelled.
            for key in ("label_model", "dependent_groups", "expanded_keywords"):
                if key in last:
                    report[key] = last[key]
            if len(all_rows):
                report["coverage"] = float(all_rows["label"].is_not_null().mean())
        raw_all = pl.concat(raws, how="vertical_relaxed")
        qcfg = cfg.quality
        # Trusted labels to compare with: gold carried by the sources, overridden by feedback.
        gold = raw_all.filter(pl.col("gold_label").is_not_null()).select(
            "article_id", pl.col("gold_label").alias("label")
        )
        if feedback is not None:
            gold = pl.concat(
                [gold.join(feedback, on="article_id", how="anti"), feedback.select(gold.columns)]
            )

        def checks(rows: pl.DataFrame, raw: pl.DataFrame) -> list:
            return [
                check_coverage(rows, cfg=qcfg),
                check_class_balance(rows, labels=cfg.labels.names, cfg=qcfg),
                check_duplicates(raw, cfg=qcfg),
                check_label_conflicts(rows, gold, cfg=qcfg),
                check_text_lengths(raw, cfg=qcfg),
            ]

        results = checks(all_rows, raw_all)
        if len(days) > 1:  # a backfill: each day's own checks on its partition, the range's below
            for day in days:
                on_day = pl.col("partition_date") == day
                for r in checks(all_rows.filter(on_day), raw_all.filter(on_day)):
                    context.log_event(partition_check_evaluation(r, asset=TABLE, partition=day.isoformat()))
        return dg.MaterializeResult(
            check_results=[
                scoped_check_result(quality_check_result(r, asset=TABLE), context.partition_keys)
                for r in results
            ],
            metadata={
                "dagster/row_count": dg.MetadataValue.int(len(all_rows)),
                **_report_metadata(report),
                "preview": metadata_table(
                    all_rows.select("article_id", "label", "confidence", "votes").head(10)
                ),
            },
        )

    return [label_feedback, labeled_articles]
