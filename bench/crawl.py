"""Crawler throughput and extraction quality vs plain single-process trafilatura, same run.

    python bench/crawl.py [--urls 1200] [--workers N] [--concurrency 16]

Serves the 80 real pages of ../shared/corpora/web_pages from a loopback HTTP server (its own
process) as >= 1,000 distinct URLs (/p/<i> = page i mod 80 plus a unique marker), crawls them
with the project's fetcher + extraction pool (politeness off: loopback), and compares with
plain `trafilatura.extract` run single-process over the same pages. Quality is token-level
P/R/F1 against the Zyte ground truth and the Readability expected output. Target:
crawler pages/s >= 0.8 x cores x plain single-core pages/s.
Writes bench/results/crawl.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
import trafilatura

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from provenance import provenance  # noqa: E402

from newsml_pipeline.core.crawl.crawler import PageRequest, crawl_pages  # noqa: E402
from newsml_pipeline.core.crawl.extract import ExtractorPool, default_workers  # noqa: E402
from newsml_pipeline.core.crawl.extraction_quality import token_prf  # noqa: E402
from newsml_pipeline.core.crawl.fetcher import Fetcher  # noqa: E402
from testkit.loopback import LoopbackServer, expected_texts, load_pages  # noqa: E402


def _serve(corpora: str, queue) -> None:
    srv = LoopbackServer(Path(corpora)).start()
    queue.put(srv.base)
    threading.Event().wait()


class PeakRss:
    """Samples RSS of this process + its children (except `exclude`) every 50 ms."""

    def __init__(self, exclude: set[int]) -> None:
        self.exclude, self.peak, self._stop = exclude, 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = me.memory_info().rss
            for c in me.children(recursive=True):
                if c.pid not in self.exclude:
                    try:
                        total += c.memory_info().rss
                    except psutil.Error:
                        continue  # a worker that just exited
            self.peak = max(self.peak, total)
            time.sleep(0.05)

    def __enter__(self) -> PeakRss:
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()


def quality(
    texts: dict[int, str | None], expected: dict[int, tuple[str, str]], kind: str
) -> tuple[float, float, float]:
    scores = [token_prf(texts[i], exp) for i, (k, exp) in expected.items() if k == kind]
    n = len(scores)
    return tuple(sum(s[j] for s in scores) / n for j in range(3))  # type: ignore[return-value]


def plain_run(pages: list[dict], rounds: int) -> tuple[float, dict[int, str | None]]:
    texts: dict[int, str | None] = {}
    start = time.perf_counter()
    for _ in range(rounds):
        for i, p in enumerate(pages):
            texts[i] = trafilatura.extract(p["html"])
    return rounds * len(pages) / (time.perf_counter() - start), texts


async def crawler_run(base: str, n_urls: int, *, workers: int, concurrency: int, with_metadata: bool, pool):
    reqs = [
        PageRequest(
            url=f"{base}/p/{i}",
            # As from a feed: with a title and date the page's own metadata is not extracted.
            title=None if with_metadata else f"item {i}",
            published=None if with_metadata else datetime(2024, 1, 1, tzinfo=UTC),
        )
        for i in range(n_urls)
    ]
    async with Fetcher(
        concurrency=concurrency, timeout_s=30, allow_private=True, polite=False, max_bytes=10_000_000
    ) as fetcher:
        start = time.perf_counter()
        pages, stats = await crawl_pages(reqs, fetcher=fetcher, extractor=pool)
        elapsed = time.perf_counter() - start
    return n_urls / elapsed, pages, stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--urls", type=int, default=1200, help="distinct loopback URLs to crawl (>= 1000)")
    ap.add_argument("--workers", type=int, default=None, help="extraction processes (default: cores)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument(
        "--plain-rounds", type=int, default=3, help="passes of plain trafilatura over the 80 pages"
    )
    ap.add_argument("--corpora", default=str(REPO.parent / "shared" / "corpora"))
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "crawl.json"))
    args = ap.parse_args()
    corpora = Path(args.corpora)
    if not (corpora / "web_pages").is_dir():
        sys.exit(f"corpora not found at {corpora} (pass --corpora)")
    cores = default_workers()
    workers = args.workers or cores

    pages = load_pages(corpora)
    expected = expected_texts(corpora, pages)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    server = ctx.Process(target=_serve, args=(str(corpora), queue), daemon=True)
    server.start()
    base = queue.get(timeout=120)

    print(
        f"plain trafilatura.extract, single process, {args.plain_rounds} x {len(pages)} pages ...", flush=True
    )
    plain_rate, plain_texts = plain_run(pages, args.plain_rounds)

    rows = []
    t0 = time.perf_counter()
    with PeakRss(exclude={server.pid}) as mem, ExtractorPool(workers=workers) as pool:
        pool_start_s = time.perf_counter() - t0
        for with_metadata in (False, True):
            label = (
                "crawler, text (feed gave title+date)" if not with_metadata else "crawler, text+title+date"
            )
            print(f"{label}: {args.urls} URLs ...", flush=True)
            rate, crawled, stats = asyncio.run(
                crawler_run(
                    base,
                    args.urls,
                    workers=workers,
                    concurrency=args.concurrency,
                    with_metadata=with_metadata,
                    pool=pool,
                )
            )
            failed = [p.error for p in crawled if not p.text]
            texts = {i: crawled[i].text for i in range(len(pages))}
            rows.append(
                {
                    "run": label,
                    "pages": args.urls,
                    "pages_per_s": rate,
                    "failed": len(failed),
                    "zyte_prf": quality(texts, expected, "zyte"),
                    "readability_prf": quality(texts, expected, "readability"),
                    "stats": stats.as_dict(),
                }
            )
    peak_mb = mem.peak / 2**20
    target = 0.8 * cores * plain_rate
    plain_row = {
        "run": "plain trafilatura.extract (1 process)",
        "pages": args.plain_rounds * len(pages),
        "pages_per_s": plain_rate,
        "failed": sum(1 for t in plain_texts.values() if not t),
        "zyte_prf": quality(plain_texts, expected, "zyte"),
        "readability_prf": quality(plain_texts, expected, "readability"),
    }
    server.kill()

    print()
    print(
        f"cores={cores} extract_workers={workers} concurrency={args.concurrency} pool start {pool_start_s:.1f}s"
    )
    hdr = f"{'run':40} {'pages':>6} {'pages/s':>8} {'vs target':>9} {'fail':>4}  {'Zyte P/R/F1':>20}  {'Readability P/R/F1':>20}"
    print(hdr)
    print("-" * len(hdr))
    for r in [plain_row, *rows]:
        ratio = f"{r['pages_per_s'] / target:.2f}x" if r is not plain_row else ""
        z = "/".join(f"{x:.3f}" for x in r["zyte_prf"])
        rd = "/".join(f"{x:.3f}" for x in r["readability_prf"])
        print(
            f"{r['run']:40} {r['pages']:>6} {r['pages_per_s']:>8.1f} {ratio:>9} {r['failed']:>4}  {z:>20}  {rd:>20}"
        )
    print(f"target = 0.8 x {cores} cores x {plain_rate:.1f} plain pages/s = {target:.1f} pages/s")
    print(f"peak RSS (crawler process + extraction workers, server excluded): {peak_mb:.0f} MiB")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                **provenance(),
                "cores": cores,
                "extract_workers": workers,
                "concurrency": args.concurrency,
                "plain": plain_row,
                "crawler": rows,
                "target_pages_per_s": target,
                "ratio_vs_target": {r["run"]: r["pages_per_s"] / target for r in rows},
                "peak_rss_mib": peak_mb,
                "pool_start_s": pool_start_s,
                "host_load_1min": os.getloadavg()[0],
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
