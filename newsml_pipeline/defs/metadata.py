"""Markdown helpers for asset metadata: small tables people read in the Dagster UI."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import dagster as dg
import polars as pl

from newsml_pipeline.core.data.quality import QualityResult


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
