"""Asset metadata people read in the Dagster UI: real tables (`metadata_table`, sortable, typed
columns) and pictures (`png_markdown`); the Markdown helpers remain for ingestion."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from newsml_pipeline.core.data.quality import QualityResult

_TYPES = ((bool, "bool"), (int, "int"), (float, "float"))


def _column_type(values: list[Any]) -> str:
    """The TableSchema type of a column: bool / int / float when every non-null value is one, else string."""
    present = [v for v in values if v is not None]
    for py, name in _TYPES:
        if present and all(isinstance(v, py) and (py is bool or not isinstance(v, bool)) for v in present):
            return name
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "float"
    return "string"


def _table_value(v: Any, kind: str, width: int) -> Any:
    if v is None:
        return None
    if kind == "float":
        return float(v)
    if kind in ("int", "bool"):
        return v
    s = v if isinstance(v, str) else json.dumps(v, default=str) if isinstance(v, (dict, list)) else str(v)
    return s if len(s) <= width else s[: width - 1] + "…"


def metadata_table(
    rows: pl.DataFrame | Iterable[Mapping[str, Any]],
    columns: list[str] | None = None,
    *,
    descriptions: Mapping[str, str] | None = None,
    max_rows: int = 200,
    width: int = 200,
) -> dg.TableMetadataValue:
    """A polars frame or list of dicts as `MetadataValue.table` with a typed `TableSchema`.

    Column types are inferred (bool/int/float/string); dicts/lists become JSON strings and long
    strings are cut to `width`. Only the first `max_rows` rows are kept (metadata is for reading).
    """
    records = rows.to_dicts() if isinstance(rows, pl.DataFrame) else [dict(r) for r in rows]
    if columns is None:
        columns = list(rows.columns) if isinstance(rows, pl.DataFrame) else []
        for r in records:
            columns += [k for k in r if k not in columns]
    records = records[:max_rows]
    kinds = {c: _column_type([r.get(c) for r in records]) for c in columns}
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn(name=c, type=kinds[c], description=(descriptions or {}).get(c)) for c in columns
        ]
    )
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord({c: _table_value(r.get(c), kinds[c], width) for c in columns}) for r in records
        ],
        schema=schema,
    )


def png_markdown(path: str | Path, *, alt: str) -> dg.MarkdownMetadataValue:
    """A PNG embedded in Markdown as a data URI: the Dagster UI shows the picture itself (a
    `MetadataValue.path` would only show the file name)."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{data})")


def _cell(v: Any, width: int = 80) -> str:
    s = "" if v is None else str(v)
    s = s.replace("|", "\\|").replace("\n", " ")
    return s if len(s) <= width else s[: width - 1] + "…"


def markdown_table(rows: Iterable[Mapping[str, Any]], columns: list[str] | None = None) -> str:
    rows = list(rows)
    if not rows:
        return "_(no rows)_"
    columns = columns or list(rows[0].keys())
    head = "| " + " | ".join(columns) + " |\n| " + " | ".join("---" for _ in columns) + " |\n"
    body = "\n".join("| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows)
    return head + body


def preview_table(df: pl.DataFrame, columns: list[str], n: int = 10) -> str:
    cols = [c for c in columns if c in df.columns]
    return markdown_table(df.select(cols).head(n).to_dicts(), cols)


def source_report_table(reports: Iterable[Any]) -> str:
    """One row per source: counts and the first errors (reports are dataclasses or dicts)."""
    rows = []
    for r in reports:
        d = dataclasses.asdict(r) if dataclasses.is_dataclass(r) else dict(r)
        errs = d.get("errors") or []
        d["errors"] = f"{len(errs)}: " + "; ".join(str(e) for e in errs[:3]) if errs else "0"
        rows.append({k: v for k, v in d.items() if not isinstance(v, (list, dict))} | {"errors": d["errors"]})
    return markdown_table(rows)


def quality_check_result(r: QualityResult, *, asset: str, prefix: str = "") -> dg.AssetCheckResult:
    """A core data-quality result as a Dagster asset check result (same name, severity, metadata)."""
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=r.name,
        passed=r.passed,
        severity=dg.AssetCheckSeverity[r.severity],
        description=prefix + r.description,
        metadata={
            k: dg.MetadataValue.json(v) if isinstance(v, (dict, list)) else v for k, v in r.metadata.items()
        },
    )


def partitions_label(keys: Sequence[str]) -> str:
    """`2026-11-18`, or `2026-11-18...2026-11-20` for a range (the CLI's --partition-range form)."""
    keys = sorted(keys)
    return keys[0] if len(keys) == 1 else f"{keys[0]}...{keys[-1]}"


def scoped_check_result(result: dg.AssetCheckResult, partition_keys: Sequence[str]) -> dg.AssetCheckResult:
    """The check result with the partition(s) it checked in its metadata (a partitioned check spec
    also records a one-day run's result on that day; a range run's result is the range's summary)."""
    return result.with_metadata({**result.metadata, "partitions": partitions_label(partition_keys)})


def partition_check_evaluation(r: QualityResult, *, asset: str, partition: str) -> dg.AssetCheckEvaluation:
    """One day's result of a partitioned check, logged by a step that covers several days so each
    day's check shows on that day's partition."""
    res = quality_check_result(r, asset=asset)
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey(asset),
        check_name=r.name,
        passed=r.passed,
        severity=res.severity,
        description=res.description,
        metadata={**res.metadata, "partitions": partition},
        partition=partition,
    )
