"""The named-entity task as Dagster assets (group `entities`), beside the topic classifier.

entity_labels (daily: the sources' spans and the label model's, per sentence)
  -> entity_splits (train / val / test by story, near-duplicates kept together)
  -> entity_candidate (the pretrained spaCy NER fine-tuned on the train auto-labels; an MLflow run,
     a new version of the entity registered model)
  -> entity_evaluation (+ blocking check entity_gate: strict span F1 on trusted gold sentences)
  -> entity_deployment (alias `champion` of the entity registered model)
entity_mentions (daily): the deployed recognizer's entities in each day's articles.
entity_review_queue (daily): the sentences the labelling page's entity mode asks people to correct.
Registered by definitions.py only when the config has an `entities:` section.
"""

import getpass
import json
import logging
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl

from newsml_pipeline.core.entities.autolabel import autolabel
from newsml_pipeline.core.entities.drift import STATE_FILE as DRIFT_STATE_FILE
from newsml_pipeline.core.entities.drift import EntityDriftMonitor, proposals_by_article
from newsml_pipeline.core.entities.evaluation import changed_spans, decide, score_models
from newsml_pipeline.core.entities.gold import read_gold
from newsml_pipeline.core.entities.metrics import span_scores
from newsml_pipeline.core.entities.model import EntityRecognizer, load_pretrained, load_recognizer
from newsml_pipeline.core.entities.registry import champion, download_version, log_entity_model
from newsml_pipeline.core.entities.review import QUEUE_SCHEMA as REVIEW_SCHEMA
from newsml_pipeline.core.entities.review import QUEUE_TABLE as REVIEW_TABLE
from newsml_pipeline.core.entities.review import select_sentences
from newsml_pipeline.core.entities.spans import CharSpan
from newsml_pipeline.core.entities.splits import split_articles
from newsml_pipeline.core.entities.train_spacy import TrainingSentence, train_spacy_ner
from newsml_pipeline.core.entities.train_transformer import train_token_classifier
from newsml_pipeline.core.entities.trusted import (
    TRUSTED_SPLIT,
    TrustedSentences,
    collect_trusted_sentences,
    drop_trusted,
    hold_out_trusted,
    read_source_gold,
)
from newsml_pipeline.core.labeling.feedback_store import store_path
from newsml_pipeline.core.labeling.span_store import read_current_spans
from newsml_pipeline.core.monitoring.drift import DriftStateStore
from newsml_pipeline.core.registry.aliases import set_champion
from newsml_pipeline.defs.metadata import metadata_table
from newsml_pipeline.defs.placement import LIGHT_STEP, WINDOW_STEP
from newsml_pipeline.defs.resources import MlflowResource, NewsmlSettings, WarehouseResource
from newsml_pipeline.entity_settings import EntitiesConfig

log = logging.getLogger(__name__)

GROUP = "entities"
LABELS_TABLE = "entity_labels"
SPLITS_TABLE = "entity_splits"
MENTIONS_TABLE = "entity_mentions"

# Column contracts of the entity tables: the writers cast to them, the catalog shows them.
LABELS_SCHEMA: dict[str, pl.DataType] = {
    "article_id": pl.String(),
    "partition_date": pl.Date(),
    "sentence": pl.Int64(),
    "sentence_start": pl.Int64(),
    "text": pl.String(),
    "entities": pl.String(),
    "missing": pl.String(),
    "rehearsal": pl.String(),
    "proposals": pl.String(),
    "abstain_share": pl.Float64(),
}
SPLITS_SCHEMA: dict[str, pl.DataType] = {"article_id": pl.String(), "split": pl.String()}
MENTIONS_SCHEMA: dict[str, pl.DataType] = {
    "article_id": pl.String(),
    "partition_date": pl.Date(),
    "model_version": pl.String(),
    "start": pl.Int64(),
    "end": pl.Int64(),
    "label": pl.String(),
    "text": pl.String(),
    "proposed": pl.Boolean(),
}
CODE_VERSION = "1"


def _cfg(newsml: NewsmlSettings) -> EntitiesConfig:
    cfg = newsml.config.entities
    if cfg is None:  # definitions.py registers these assets only with the section present
        raise dg.Failure(description="the config has no `entities:` section")
    return cfg


def _spans_json(spans: list[CharSpan]) -> str:
    return json.dumps([[s.start, s.end, s.label] for s in spans])


def _spans(raw: str) -> list[CharSpan]:
    return [CharSpan(a, b, lab) for a, b, lab in json.loads(raw)]


def _article_texts(raw: pl.DataFrame) -> list[str]:
    return [
        f"{t or ''}.\n{x or ''}" if t else (x or "") for t, x in zip(raw["title"], raw["text"], strict=True)
    ]


def trusted_sentences(newsml: NewsmlSettings, wh) -> TrustedSentences:  # noqa: ANN001 - Warehouse
    """Every trusted sentence: entities.gold_files, a labelled source's gold (entity_gold) and the
    labelling page's span answers. Evaluation and the gate only: never trained on."""
    cfg = _cfg(newsml)
    return collect_trusted_sentences(
        files=[s for f in cfg.gold_files for s in read_gold(f)],
        source=read_source_gold(wh),
        page=read_current_spans(store_path(newsml.settings.feedback_dir)),
        types=cfg.names,
    )


def training_rows(newsml: NewsmlSettings, wh) -> tuple[pl.DataFrame, pl.DataFrame, int]:  # noqa: ANN001
    """(train rows, held-out test rows, train rows dropped as trusted) of the labelled sentences in
    entity_splits: what entity_candidate trains on. No trusted sentence's article or text is in it."""
    cfg = _cfg(newsml)
    rows = wh.query(
        f"""SELECT l.article_id, l.text, l.entities, l.missing, l.rehearsal, l.abstain_share, s.split
            FROM {LABELS_TABLE} l JOIN {SPLITS_TABLE} s USING (article_id)
            ORDER BY l.article_id, l.sentence"""
    )
    train = rows.filter(
        (pl.col("split") == "train") & (pl.col("abstain_share") <= cfg.label_model.max_abstain_share)
    )
    train, dropped = drop_trusted(train, trusted_sentences(newsml, wh))
    return train, rows.filter(pl.col("split") == "test"), dropped


def _day_proposals(wh, day: date) -> dict[str, set[CharSpan]]:  # noqa: ANN001 - Warehouse
    """Every span the sources proposed for the day's articles, in article offsets."""
    if not wh.table_exists(LABELS_TABLE):
        return {}
    rows = wh.read(LABELS_TABLE, where="partition_date = ?", params=[day])
    if not len(rows) or "sentence_start" not in rows.columns:
        return {}
    return proposals_by_article(
        rows["article_id"].to_list(),
        rows["sentence_start"].to_list(),
        rows["entities"].to_list(),
        rows["proposals"].to_list(),
    )


def build_entity_assets(partitions: dg.PartitionsDefinition) -> tuple[list, list]:
    """(assets, asset checks) of the entity task."""

    @dg.asset(
        name=LABELS_TABLE,
        group_name=GROUP,
        partitions_def=partitions,
        deps=[dg.AssetKey("raw_articles")],
        op_tags=WINDOW_STEP,
        kinds={"duckdb", "spacy"},
        code_version=CODE_VERSION,
        backfill_policy=dg.BackfillPolicy.single_run(),
        description=(
            "Entity auto-labels of the day's articles, one row per sentence: each source's spans "
            "(pretrained NER mapped to the types, gazetteers, patterns), the label model's spans, the "
            "character ranges it abstained on and the pretrained spans kept for rehearsal."
        ),
    )
    def entity_labels(
        context: dg.AssetExecutionContext, newsml: NewsmlSettings, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        cfg = _cfg(newsml)
        wh = warehouse.get()
        nlp = load_pretrained()
        total, per_type, sources = 0, Counter(), Counter()
        abstain = []
        for key in context.partition_keys:
            day = date.fromisoformat(key)
            raw = wh.read("raw_articles", where="partition_date = ?", params=[day])
            sents, _ = autolabel(nlp, cfg, raw["article_id"].to_list(), _article_texts(raw))
            rows = pl.DataFrame(
                {
                    "article_id": [s.article_id for s in sents],
                    "partition_date": [day] * len(sents),
                    "sentence": [s.sentence for s in sents],
                    "sentence_start": [s.start for s in sents],
                    "text": [s.text for s in sents],
                    "entities": [_spans_json(s.entities) for s in sents],
                    "missing": [json.dumps(s.missing) for s in sents],
                    "rehearsal": [_spans_json(s.rehearsal) for s in sents],
                    "proposals": [
                        json.dumps(
                            {k: [[a.start, a.end, a.label] for a in v] for k, v in s.proposals.items()}
                        )
                        for s in sents
                    ],
                    "abstain_share": [s.abstain_share for s in sents],
                },
                schema=LABELS_SCHEMA,
            )
            wh.replace_partition(LABELS_TABLE, rows, partition_column="partition_date", partition_key=day)
            total += len(rows)
            for s in sents:
                per_type.update(e.label for e in s.entities)
                sources.update({k: len(v) for k, v in s.proposals.items()})
                abstain.append(s.abstain_share)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": dg.MetadataValue.int(total),
                "entities_per_type": dg.MetadataValue.json(dict(per_type)),
                "spans_per_source": dg.MetadataValue.json(dict(sources)),
                "mean_abstain_share": dg.MetadataValue.float(sum(abstain) / len(abstain) if abstain else 0.0),
            }
        )

    @dg.asset(
        name=SPLITS_TABLE,
        group_name=GROUP,
        deps=[dg.AssetKey(LABELS_TABLE)],
        op_tags=WINDOW_STEP,
        kinds={"duckdb"},
        code_version=CODE_VERSION,
        description=(
            "train / val / test of the auto-labelled sentences by story: an article and its near-duplicates "
            "(re-runs) share one split (the topic splits' group keys and hashing); test sentences only "
            "measure the recognizer's agreement with its sources, the gate uses gold sentences."
        ),
    )
    def entity_splits(
        context: dg.AssetExecutionContext, newsml: NewsmlSettings, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        splits_cfg = newsml.config.splits
        wh = warehouse.get()
        if not wh.table_exists(LABELS_TABLE):
            raise dg.Failure(description=f"{LABELS_TABLE} is not materialized yet: label some days first")
        arts = wh.query(
            f"""SELECT DISTINCT l.article_id, r.near_duplicate_of, r.content_hash
                FROM {LABELS_TABLE} l JOIN raw_articles r USING (article_id) ORDER BY l.article_id"""
        )
        split = split_articles(
            arts["article_id"].to_list(),
            near_duplicate_of=arts["near_duplicate_of"].to_list(),
            content_hashes=arts["content_hash"].to_list(),
            salt=splits_cfg.salt,
            val_fraction=splits_cfg.val_fraction,
            test_fraction=splits_cfg.test_fraction,
        )
        # A story with a trusted sentence (page answer, source gold) is never trained on.
        trusted = trusted_sentences(newsml, wh)
        split = hold_out_trusted(
            split,
            article_ids=arts["article_id"].to_list(),
            near_duplicate_of=arts["near_duplicate_of"].to_list(),
            content_hashes=arts["content_hash"].to_list(),
            trusted_ids=trusted.article_ids,
        )
        frame = pl.DataFrame(
            {"article_id": list(split), "split": list(split.values())},
            schema=SPLITS_SCHEMA,
        )
        wh.replace_table(SPLITS_TABLE, frame)
        sizes = dict(
            wh.query(
                f"SELECT s.split, count(*) AS n FROM {LABELS_TABLE} l JOIN {SPLITS_TABLE} s USING (article_id) GROUP BY s.split"
            ).iter_rows()
        )
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": dg.MetadataValue.int(len(frame)),
                "sentences_per_split": dg.MetadataValue.json(sizes),
                "articles_held_out_as_trusted": dg.MetadataValue.int(
                    sum(v == TRUSTED_SPLIT for v in split.values())
                ),
            }
        )

    @dg.asset(
        group_name=GROUP,
        deps=[dg.AssetKey(SPLITS_TABLE)],
        op_tags=WINDOW_STEP,
        kinds={"spacy", "mlflow"},
        code_version=CODE_VERSION,
        description=(
            "The pretrained spaCy NER fine-tuned on the train sentences' auto-labels (entities.training: "
            "rehearsal keeps the pretrained spans of unmapped labels as targets, so it does not forget). "
            "One MLflow run; a new version of entities.registered_model, without alias."
        ),
    )
    def entity_candidate(
        context: dg.AssetExecutionContext,
        newsml: NewsmlSettings,
        warehouse: WarehouseResource,
        mlflow: MlflowResource,
    ) -> dg.Output[dict]:
        cfg = _cfg(newsml)
        settings = newsml.settings
        wh = warehouse.get()
        train, held, dropped_trusted = training_rows(newsml, wh)
        if dropped_trusted:
            context.log.info("%d train sentences left out: trusted (evaluation only)", dropped_trusted)
        sentences = [
            TrainingSentence(t, _spans(e), [tuple(m) for m in json.loads(mi)], _spans(r))
            for t, e, mi, r in zip(
                train["text"], train["entities"], train["missing"], train["rehearsal"], strict=True
            )
        ]
        if not sentences:
            raise dg.Failure(
                description="no auto-labelled train sentences: materialize entity_labels for some days"
            )
        if cfg.training.method == "transformer_lora":
            res = train_token_classifier(sentences, cfg)
        else:
            res = train_spacy_ner(sentences, cfg)
        agreement = span_scores(
            [_spans(e) for e in held["entities"]],
            res.recognizer.predict(held["text"].to_list()),
            types=cfg.names,
        )
        out_dir = settings.models_dir / "entities" / context.run_id
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        if cfg.training.method == "transformer_lora":
            res.recognizer.save(out_dir, types=cfg.names)
        else:
            res.recognizer.save(out_dir)
        reg = log_entity_model(
            out_dir,
            tracking_uri=mlflow.tracking_uri,
            experiment=newsml.config.mlflow.experiment,
            artifact_root=mlflow.artifact_root,
            registered_model=cfg.registered_model,
            params={
                "method": cfg.training.method,
                "strategy": cfg.training.strategy,
                "epochs": cfg.training.epochs,
                "batch_size": cfg.training.batch_size,
                "dropout": cfg.training.dropout,
                "learning_rate": cfg.training.learning_rate,
                "types": ",".join(cfg.names),
                "train_sentences": res.n_sentences,
            },
            metrics={
                "train_seconds": res.seconds,
                "heldout_agreement_micro_f1": agreement["micro"]["f1"],
                **{f"heldout_agreement_f1_{t}": v["f1"] for t, v in agreement["per_type"].items()},
            },
            epoch_losses=res.losses,
            tags={"dagster_run_id": context.run_id},
        )
        value = {
            "model_dir": str(out_dir),
            "run_id": reg.run_id,
            "experiment_id": reg.experiment_id,
            "registered_model": reg.registered_model,
            "version": reg.version,
            "train_sentences": res.n_sentences,
        }
        return dg.Output(
            value,
            metadata={
                "version": reg.version,
                "train_sentences": dg.MetadataValue.int(res.n_sentences),
                "train_seconds": dg.MetadataValue.float(res.seconds),
                "epoch_losses": dg.MetadataValue.json(res.losses),
                "heldout_agreement": metadata_table(
                    [
                        {"type": t, "f1": v["f1"], "precision": v["precision"], "recall": v["recall"]}
                        for t, v in agreement["per_type"].items()
                    ]
                ),
                "note": "held-out agreement is with the auto-labels (the sources), not accuracy",
                "mlflow_run": dg.MetadataValue.url(mlflow.run_url(reg.run_id, reg.experiment_id)),
            },
        )

    @dg.asset(
        group_name=GROUP,
        op_tags=WINDOW_STEP,
        kinds={"spacy", "mlflow"},
        code_version=CODE_VERSION,
        description=(
            "Candidate vs the pretrained pipeline (mapped to the types) vs the champion on the trusted gold "
            "sentences (entities.gold_files, gold spans a local source carries, span answers of the labelling "
            "page): strict span precision/recall/F1 per type and micro."
        ),
    )
    def entity_evaluation(
        context: dg.AssetExecutionContext,
        newsml: NewsmlSettings,
        warehouse: WarehouseResource,
        mlflow: MlflowResource,
        entity_candidate: dict,
    ) -> dg.Output[dict]:
        cfg = _cfg(newsml)
        trusted = trusted_sentences(newsml, warehouse.get())
        gold = trusted.sentences
        champ_version = champion(mlflow.tracking_uri, cfg.registered_model)
        champ = None
        if champ_version is not None and champ_version != entity_candidate["version"]:
            champ = load_recognizer(
                download_version(
                    mlflow.tracking_uri,
                    cfg.registered_model,
                    champ_version,
                    newsml.settings.models_dir / "registry_cache",
                )
            )
        models = {
            "candidate": load_recognizer(entity_candidate["model_dir"]),
            "pretrained": EntityRecognizer.stock(cfg),
            "champion": champ,
        }
        scores, preds = score_models(gold, models, types=cfg.names) if gold else ({}, {})
        decision = decide(scores, n_sentences=len(gold), types=cfg.names, cfg=cfg.gate)
        import mlflow as mlf

        mlf.set_tracking_uri(mlflow.tracking_uri)
        with mlf.start_run(
            run_name="entity-evaluation",
            tags={
                "newsml.task": "entities",
                "dagster_run_id": context.run_id,
                "training_run_id": entity_candidate["run_id"],
            },
        ):
            for name, s in scores.items():
                mlf.log_metric(f"{name}_micro_f1", s["micro"]["f1"])
                for t, v in s["per_type"].items():
                    mlf.log_metric(f"{name}_f1_{t}", v["f1"])
            mlf.log_metric("gate_passed", float(decision.passed))
        rows = [
            {
                "model": name,
                "type": t,
                "precision": v["precision"],
                "recall": v["recall"],
                "f1": v["f1"],
                "support": v["support"],
            }
            for name, s in scores.items()
            for t, v in [("micro", s["micro"]), *s["per_type"].items()]
        ]
        value = {
            "candidate": entity_candidate,
            "scores": {
                k: {
                    "micro_f1": v["micro"]["f1"],
                    "per_type_f1": {t: x["f1"] for t, x in v["per_type"].items()},
                }
                for k, v in scores.items()
            },
            "gate": {"passed": decision.passed, "reasons": decision.reasons, "checks": decision.checks},
            "n_sentences": len(gold),
            "trusted_per_origin": trusted.per_origin,
        }
        return dg.Output(
            value,
            metadata={
                "per_type_scores": metadata_table(rows)
                if rows
                else dg.MetadataValue.text("no gold sentences"),
                "gate_passed": decision.passed,
                "gate_reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in decision.reasons)),
                "gold_sentences": dg.MetadataValue.int(len(gold)),
                "gold_sentences_per_origin": dg.MetadataValue.json(trusted.per_origin),
                "gold_problems": dg.MetadataValue.md(
                    "\n".join(f"- {p}" for p in trusted.problems[:50]) or "none"
                ),
                "changed_spans": metadata_table(
                    changed_spans(gold, preds["pretrained"], preds["candidate"], types=cfg.names)
                    if preds
                    else [],
                    columns=["sentence", "pretrained", "candidate", "gold"],
                ),
                "champion_version": champ_version or "none",
            },
        )

    @dg.asset_check(
        asset=entity_evaluation,
        name="entity_gate",
        blocking=True,
        op_tags=LIGHT_STEP,
        description=(
            "Entity deployment rule: candidate strict micro F1 >= pretrained + entities.gate.min_gain on gold "
            "sentences, every type >= entities.gate.min_type_f1, never below the champion. Blocking."
        ),
    )
    def entity_gate(entity_evaluation: dict) -> dg.AssetCheckResult:
        gate = entity_evaluation["gate"]
        return dg.AssetCheckResult(
            passed=bool(gate["passed"]),
            severity=dg.AssetCheckSeverity.ERROR,
            description=("gate PASSED: " if gate["passed"] else "gate FAILED: ") + "; ".join(gate["reasons"]),
            metadata={k: dg.MetadataValue.json(v) for k, v in gate["checks"].items()},
        )

    @dg.asset(
        group_name=GROUP,
        op_tags=LIGHT_STEP,
        kinds={"mlflow"},
        description="The entity model version that serves: alias `champion` of entities.registered_model.",
    )
    def entity_deployment(
        context: dg.AssetExecutionContext, mlflow: MlflowResource, entity_evaluation: dict
    ) -> dg.Output[dict]:
        cand = entity_evaluation["candidate"]
        if not entity_evaluation["gate"][
            "passed"
        ]:  # the blocking check stops us first; never deploy a failure
            raise dg.Failure(
                description="entity gate failed: " + "; ".join(entity_evaluation["gate"]["reasons"])
            )
        new, former = set_champion(
            mlflow.client(),
            cand["registered_model"],
            cand["version"],
            reason=f"dagster run {context.run_id} ({getpass.getuser()}): "
            + "; ".join(entity_evaluation["gate"]["reasons"]),
            metrics={"micro_f1": entity_evaluation["scores"]["candidate"]["micro_f1"]},
        )
        return dg.Output(
            {"registered_model": cand["registered_model"], "version": str(new.version)},
            metadata={
                "champion_version": str(new.version),
                "previous_version": "none" if former is None else str(former.version),
                "model_uri": f"models:/{cand['registered_model']}@champion",
            },
        )

    @dg.asset(
        name=MENTIONS_TABLE,
        group_name=GROUP,
        partitions_def=partitions,
        deps=[dg.AssetKey("raw_articles"), dg.AssetKey(LABELS_TABLE)],
        op_tags=WINDOW_STEP,
        kinds={"duckdb", "spacy"},
        code_version=CODE_VERSION,
        backfill_policy=dg.BackfillPolicy.single_run(),
        description=(
            "The entities of each day's articles as the deployed recognizer (entity champion) finds them, one "
            "row per mention with character offsets into title + text; the pretrained pipeline mapped to the "
            "types (model_version `pretrained`) before any deployment. `proposed`: whether a labelling source "
            "proposed that exact span and type (entity_labels of the day); the share that none did is what "
            "entity_drift_sensor watches."
        ),
    )
    def entity_mentions(
        context: dg.AssetExecutionContext,
        newsml: NewsmlSettings,
        warehouse: WarehouseResource,
        mlflow: MlflowResource,
    ) -> dg.MaterializeResult:
        cfg = _cfg(newsml)
        version = champion(mlflow.tracking_uri, cfg.registered_model)
        if version is None:
            rec, model_version = EntityRecognizer.stock(cfg, conventions=True), "pretrained"
        else:
            path = download_version(
                mlflow.tracking_uri,
                cfg.registered_model,
                version,
                newsml.settings.models_dir / "registry_cache",
            )
            rec, model_version = load_recognizer(path), version
        wh = warehouse.get()
        total = unproposed = n_checked = 0
        per_type: Counter[str] = Counter()
        for key in context.partition_keys:
            day = date.fromisoformat(key)
            raw = wh.read("raw_articles", where="partition_date = ?", params=[day])
            texts = [t[: cfg.max_chars] for t in _article_texts(raw)]
            preds = rec.predict(texts)
            proposed = _day_proposals(wh, day)
            recs = [
                {
                    "article_id": aid,
                    "partition_date": day,
                    "model_version": model_version,
                    "start": s.start,
                    "end": s.end,
                    "label": s.label,
                    "text": text[s.start : s.end],
                    "proposed": (s in proposed[aid]) if aid in proposed else None,
                }
                for aid, text, spans in zip(raw["article_id"], texts, preds, strict=True)
                for s in spans
            ]
            frame = pl.DataFrame(
                recs,
                schema=MENTIONS_SCHEMA,
            )
            wh.replace_partition(MENTIONS_TABLE, frame, partition_column="partition_date", partition_key=day)
            total += len(frame)
            per_type.update(frame["label"].to_list())
            checked = frame.filter(pl.col("proposed").is_not_null())
            unproposed += int((~checked["proposed"]).sum())
            n_checked += len(checked)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": dg.MetadataValue.int(total),
                "unproposed_share": dg.MetadataValue.float(unproposed / n_checked if n_checked else 0.0),
                "model_version": model_version,
                "mentions_per_type": dg.MetadataValue.json(dict(per_type)),
            }
        )

    @dg.asset(
        name=REVIEW_TABLE,
        group_name=GROUP,
        partitions_def=partitions,
        deps=[dg.AssetKey(LABELS_TABLE)],
        op_tags=LIGHT_STEP,
        kinds={"duckdb"},
        code_version=CODE_VERSION,
        backfill_policy=dg.BackfillPolicy.single_run(),
        description=(
            "Per day, up to entities.review_per_day auto-labelled sentences where the labelling sources "
            "disagree most (contested spans + tokens the label model abstained on), with the label model's "
            "spans as the starting point: served by `newsml label` at /entities; answers become trusted "
            "sentences for entity_evaluation."
        ),
    )
    def entity_review_queue(
        context: dg.AssetExecutionContext, newsml: NewsmlSettings, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        cfg = _cfg(newsml)
        wh = warehouse.get()
        total, contested = 0, 0
        for key in context.partition_keys:
            day = date.fromisoformat(key)
            rows = wh.query(
                f"""SELECT article_id, sentence, text, entities, proposals, missing FROM {LABELS_TABLE}
                    WHERE partition_date = ? ORDER BY article_id, sentence""",
                [day],
            )
            queue = select_sentences(
                rows,
                day=day,
                budget=cfg.review_per_day,
                proposals=[
                    {k: [CharSpan(a, b, lab) for a, b, lab in v] for k, v in json.loads(p).items()}
                    for p in rows["proposals"]
                ],
                missing=[[tuple(m) for m in json.loads(x)] for x in rows["missing"]],
            )
            wh.replace_partition(
                REVIEW_TABLE, queue.cast(REVIEW_SCHEMA), partition_column="partition_date", partition_key=day
            )
            total += len(queue)
            contested += int((queue["disagreement"] > 0).sum())
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": dg.MetadataValue.int(total),
                "contested_sentences": dg.MetadataValue.int(contested),
            }
        )

    assets = [
        entity_review_queue,
        entity_labels,
        entity_splits,
        entity_candidate,
        entity_evaluation,
        entity_deployment,
        entity_mentions,
    ]
    return assets, [entity_gate]


def build_entity_jobs(partitions: dg.PartitionsDefinition) -> list:
    """entity_ingest_job (labels, mentions and the review queue per day) and entity_retrain_job (splits -> deployment)."""
    ingest = dg.define_asset_job(
        "entity_ingest_job",
        selection=dg.AssetSelection.assets(LABELS_TABLE, MENTIONS_TABLE, REVIEW_TABLE),
        partitions_def=partitions,
    )
    retrain = dg.define_asset_job(
        "entity_retrain_job",
        selection=dg.AssetSelection.assets(
            SPLITS_TABLE, "entity_candidate", "entity_evaluation", "entity_deployment"
        ),
    )
    return [ingest, retrain]


def build_entity_schedules(jobs: list) -> list:
    """entity_daily_schedule: 02:00 UTC, the day that ended (after the 00:30 topic ingest stored its
    raw_articles); entity_weekly_retrain_schedule: Mondays 04:00 UTC (after the topic retrain)."""
    ingest, retrain = jobs
    daily = dg.build_schedule_from_partitioned_job(
        ingest,
        name="entity_daily_schedule",
        hour_of_day=2,
        minute_of_hour=0,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="02:00 UTC: entity auto-labels and the champion's mentions for the day that ended.",
    )
    weekly = dg.ScheduleDefinition(
        name="entity_weekly_retrain_schedule",
        job=retrain,
        cron_schedule="0 4 * * 1",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        tags={"newsml/trigger": "schedule"},
        description="Mondays 04:00 UTC: retrain the entity recognizer, gate it on gold sentences, deploy if better.",
    )
    return [daily, weekly]


def build_entity_drift_sensor(jobs: list) -> dg.SensorDefinition:
    """entity_drift_sensor: ADWIN over the per-article share of the champion's entities that no
    labelling source proposed (entity_mentions.proposed) -> an entity_retrain_job run, at most one
    per drift.cooldown_hours."""
    retrain = jobs[1]

    @dg.sensor(
        name="entity_drift_sensor",
        job=retrain,
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(
            "river ADWIN over the share of the deployed recognizer's entities that no labelling source "
            "proposed, per article in publication order. Drift -> entity_retrain_job (drift.cooldown_hours)."
        ),
    )
    def entity_drift_sensor(
        context: dg.SensorEvaluationContext, newsml: NewsmlSettings, warehouse: WarehouseResource
    ) -> dg.SensorResult:
        settings = newsml.settings
        dcfg = settings.config.drift
        wh = warehouse.get()
        if not wh.table_exists(MENTIONS_TABLE):
            return dg.SensorResult(skip_reason=dg.SkipReason("no entity_mentions yet: run entity_ingest_job"))
        store = DriftStateStore.in_home(settings.home, name=DRIFT_STATE_FILE)
        mon = EntityDriftMonitor.load(store, delta=dcfg.delta, clock=dcfg.clock)
        after, params = "", []
        if mon.cursor is not None:
            after = "AND (CAST(partition_date AS VARCHAR) > ? OR (CAST(partition_date AS VARCHAR) = ? AND article_id > ?))"
            params = [mon.cursor[0], mon.cursor[0], mon.cursor[1]]
        rows = wh.query(
            f"""SELECT CAST(partition_date AS VARCHAR) AS day, article_id,
                       AVG(CASE WHEN proposed THEN 0.0 ELSE 1.0 END) AS unproposed
                FROM {MENTIONS_TABLE} WHERE proposed IS NOT NULL {after}
                GROUP BY 1, 2 ORDER BY 1, 2 LIMIT {int(dcfg.max_rows_per_tick)}""",
            params,
        )
        if not len(rows):
            return dg.SensorResult(skip_reason=dg.SkipReason("no new entity mentions since the last tick"))
        hits = mon.update([float(v) for v in rows["unproposed"].to_list()])
        mon.cursor = (str(rows["day"][-1]), str(rows["article_id"][-1]))
        now = datetime.now(UTC)
        cooled = mon.last_request is None or now - mon.last_request >= timedelta(hours=dcfg.cooldown_hours)
        request = bool(hits) and cooled
        if request:
            mon.last_request = now
        mon.save(store)
        context.log.info(
            "entity drift: %d articles fed, %d detections, unproposed share now %.3f",
            len(rows),
            len(hits),
            mon.mean,
        )
        if not request:
            why = "in cooldown" if hits else "no drift"
            return dg.SensorResult(skip_reason=dg.SkipReason(f"{why} after {len(rows)} articles"))
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"entity-drift-{mon.n_seen}",
                    tags={"newsml/trigger": "drift", "newsml/entity_unproposed_share": f"{mon.mean:.3f}"},
                )
            ]
        )

    return entity_drift_sensor
