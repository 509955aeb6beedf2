"""Rebuild `newsml_pipeline/newsroom/data/huffpost_sample.jsonl.gz` from the shared News Category
corpus (R. Misra, CC BY 4.0; see that folder's README.md): the newest rows per category of the
demo's six sections, rows with a blank headline or description left out.

    python tools/build_demo_sample.py ../shared/corpora/news_category/news_category.jsonl.gz
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

# Rows per category: enough for `newsml demo`'s defaults (9 days x 180 stories); BUSINESS and TECH
# are all the corpus has. U.S. NEWS and CRIME are outside the demo's schema: the stories of the
# change of topic mix on day 8.
CAPS = {
    "POLITICS": 600,
    "ENTERTAINMENT": 400,
    "WORLD NEWS": 400,
    "SPORTS": 324,
    "BUSINESS": 167,
    "TECH": 81,
    "U.S. NEWS": 150,
    "CRIME": 100,
}
OUT = (
    Path(__file__).resolve().parents[1] / "newsml_pipeline" / "newsroom" / "data" / "huffpost_sample.jsonl.gz"
)


def main(src: str) -> None:
    with gzip.open(src, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    rows = [r for r in rows if r["label"] in CAPS and r["title"].strip() and r["text"].strip()]
    rows.sort(key=lambda r: r["published"], reverse=True)  # newest first, stable within a day
    taken: dict[str, int] = dict.fromkeys(CAPS, 0)
    keep = []
    for r in rows:
        if taken[r["label"]] < CAPS[r["label"]]:
            taken[r["label"]] += 1
            keep.append(r)
    # mtime=0: the same rows give the same bytes
    with open(OUT, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        for r in keep:
            gz.write((json.dumps(r, ensure_ascii=False) + "\n").encode("utf-8"))
    print(f"{OUT}: {len(keep)} rows {taken}, {OUT.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main(sys.argv[1])
