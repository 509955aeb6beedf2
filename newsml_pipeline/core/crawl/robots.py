"""robots.txt, fetched once per host per run through the shared fetcher and cached.

Status handling follows Google's documented behaviour: a 4xx robots.txt means "no rules"
(allow all); a 5xx or an unreachable host means "assume everything is disallowed" for this run.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

if TYPE_CHECKING:
    from newsml_pipeline.core.crawl.fetcher import Fetcher

log = logging.getLogger(__name__)


class RobotsCache:
    """Answers `allowed(url)` for one crawl run; each host's robots.txt is fetched at most once."""

    def __init__(self, fetcher: Fetcher, *, user_agent: str) -> None:
        self._fetcher = fetcher
        self._agent = user_agent.split("/", 1)[0]
        self._rules: dict[
            str, RobotFileParser | bool
        ] = {}  # origin -> parser, or True/False = allow/deny all
        self._locks: dict[str, asyncio.Lock] = {}
        self.notes: dict[str, str] = {}  # origin -> why it is allow-all / deny-all

    async def allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        rules = self._rules.get(origin)
        if rules is None:
            lock = self._locks.setdefault(origin, asyncio.Lock())
            async with lock:
                rules = self._rules.get(origin)
                if rules is None:
                    rules = self._rules[origin] = await self._load(origin)
        if isinstance(rules, bool):
            return rules
        return rules.can_fetch(self._agent, url)

    async def _load(self, origin: str) -> RobotFileParser | bool:
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
        parser = RobotFileParser()
        parser.parse(res.content.decode("utf-8", errors="replace").splitlines())
        return parser
