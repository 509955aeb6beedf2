"""Train/val/test for entity sentences by story: every sentence of an article, and of every
near-duplicate of it (a wire story re-run with a new headline), lands in the same split, so no
story is on both sides. The group keys and hash buckets are the topic splits' own
(core/data/splits.py), so the same article falls in the same split in both tasks."""

from __future__ import annotations

from newsml_pipeline.core.data.splits import bucket_of, bucket_value, group_keys


def split_articles(
    article_ids: list[str],
    *,
    near_duplicate_of: list[str | None] | None = None,
    content_hashes: list[str | None] | None = None,
    salt: str,
    val_fraction: float,
    test_fraction: float,
) -> dict[str, str]:
    """article_id -> "train" / "val" / "test", deterministic in (group, salt)."""
    n = len(article_ids)
    keys = group_keys(article_ids, near_duplicate_of or [None] * n, content_hashes or [None] * n)
    return {
        aid: bucket_of(bucket_value(k, salt=salt), val_fraction=val_fraction, test_fraction=test_fraction)
        for aid, k in zip(article_ids, keys, strict=True)
    }
