"""robots.txt, fetched once per host per run through the shared fetcher and cached.

Rules are parsed by protego, which matches the way Google does: `*` and `$` wildcards, the
longest matching rule wins (Allow on a tie), and a group naming our agent replaces `*`.
`urllib.robotparser` does none of that (first match wins, wildcards taken literally).

Status handling follows Google's documented behaviour: a 4xx robots.txt means "no rules"
(allow all); a 5xx or an unreachable host means "assume everything is disallowed" for this run.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from protego import Protego

from newsml_pipeline.core.crawl.urls import origin

if TYPE_CHECKING:
    from newsml_pipeline.core.crawl.fetcher import Fetcher

log = logging.getLogger(__name__)


class RobotsCache:
    """Answers `allowed(url)` for one crawl run; each host's robots.txt is fetched at most once."""

    def __init__(self, fetcher: Fetcher, *, user_agent: str) -> None:
        self._fetcher = fetcher
        self._agent = user_agent.split("/", 1)[0]
        # origin -> parsed rules, or True/False = allow/deny all
        self._rules: dict[str, Protego | bool] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.notes: dict[str, str] = {}  # origin -> why it is allow-all / deny-all

    async def allowed(self, url: str) -> bool:
        rules = await self._get(origin(url))
        if isinstance(rules, bool):
            return rules
        return rules.can_fetch(url, self._agent)

    def crawl_delay(self, url: str) -> float | None:
        """Crawl-delay (seconds) the loaded robots.txt of `url`'s origin sets for us, if any."""
        rules = self._rules.get(origin(url))
        if rules is None or isinstance(rules, bool):
            return None
        delay = rules.crawl_delay(self._agent)
        return float(delay) if delay is not None and delay > 0 else None

    async def _get(self, origin: str) -> Protego | bool:
        rules = self._rules.get(origin)
        if rules is None:
            lock = self._locks.setdefault(origin, asyncio.Lock())
            async with lock:
                rules = self._rules.get(origin)
                if rules is None:
                    rules = self._rules[origin] = await self._load(origin)
        return rules

    async def _load(self, origin: str) -> Protego | bool:
        res = await self._fetcher.fetch(f"{origin}/robots.txt", kind="robots")
        if res.status is not None and 400 <= res.status < 500 and res.status != 429:
            self.notes[origin] = f"robots.txt HTTP {res.status}: no rules, all allowed"
            return True
        if res.error or res.content is None:
            self.notes[origin] = f"robots.txt unavailable ({res.error}): host disallowed for this run"
            log.warning(
                "robots.txt of %s unavailable, not crawling that host this run: %s", origin, res.error
            )
            return False
        return Protego.parse(res.content.decode("utf-8", errors="replace"))
