"""`dagster dev` as users run it: the lineage over GraphQL, and a screenshot of the UI (slow).

Starts `dagster dev` on loopback with the repo's workspace, asks the GraphQL API for the asset
graph, schedules and sensors, and takes a headless Chromium screenshot of the lineage page,
saved to data/screenshots/lineage.png for people to look at. Chromium is Debian's `chromium`;
the test installs it with apt-get when it is missing and it runs as root.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from newsml_pipeline_tests.defs.test_definitions import EXPECTED_EDGES
from newsml_pipeline_tests.e2e.browser import chromium as find_chromium

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "data" / "screenshots"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SKIP_MODAL_JS = (
    "(() => { const b = [...document.querySelectorAll('button')].find(b => b.textContent.trim() === 'Skip');"
    " if (b) { b.click(); return 'dismissed'; } return 'none'; })()"
)


async def _screenshot_via_devtools(chromium: str, url: str, out: Path, profile: Path) -> None:
    """Open `url` in headless Chromium, dismiss the first-visit community dialog, save a PNG.

    Uses the DevTools protocol over a websocket (the `websockets` package comes with
    dagster-webserver's uvicorn), so the picture shows the page as a person sees it."""
    websockets = pytest.importorskip("websockets")
    port = _free_port()
    proc = subprocess.Popen(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--window-size=1600,1000",
            f"--remote-debugging-port={port}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        targets = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=5) as resp:
                    targets = json.loads(resp.read())
                break
            except OSError:
                time.sleep(0.2)
        assert targets, "chromium's DevTools endpoint did not come up"
        ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        async with websockets.connect(ws_url, max_size=64_000_000) as ws:
            counter = 0

            async def call(method: str, **params) -> dict:
                nonlocal counter
                counter += 1
                await ws.send(json.dumps({"id": counter, "method": method, "params": params}))
                while True:
                    msg = json.loads(await ws.recv())
                    if msg.get("id") == counter:
                        assert "error" not in msg, msg
                        return msg["result"]

            await call(
                "Emulation.setDeviceMetricsOverride",
                width=1600,
                height=1000,
                deviceScaleFactor=1,
                mobile=False,
            )
            await call("Page.navigate", url=url)
            await asyncio.sleep(10)  # the UI loads its data over GraphQL after the page itself
            await call("Runtime.evaluate", expression=SKIP_MODAL_JS, returnByValue=True)
            await asyncio.sleep(2)
            shot = await call("Page.captureScreenshot", format="png")
            out.write_bytes(base64.b64decode(shot["data"]))
    finally:
        proc.kill()
        proc.wait(timeout=30)


def _graphql(base: str, query: str) -> dict:
    req = urllib.request.Request(
        f"{base}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = json.loads(resp.read())
    assert "errors" not in body, body
    return body["data"]


@pytest.fixture
def dagster_dev(tmp_path: Path):
    port = _free_port()
    env = {
        **os.environ,
        "NEWSML_HOME": str(tmp_path / "home"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }
    (tmp_path / "dagster_home").mkdir()
    log = open(tmp_path / "dagster_dev.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while True:
            if proc.poll() is not None:
                raise AssertionError(
                    "dagster dev exited: " + (tmp_path / "dagster_dev.log").read_text()[-3000:]
                )
            try:
                data = _graphql(
                    base,
                    "{ repositoriesOrError { __typename ... on RepositoryConnection { nodes { name } } } }",
                )
                if data["repositoriesOrError"].get("nodes"):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("dagster dev did not answer within 180 s")
            time.sleep(2)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def test_lineage_schedules_sensor_and_screenshot(dagster_dev: str, tmp_path: Path) -> None:
    data = _graphql(dagster_dev, "{ assetNodes { assetKey { path } dependencyKeys { path } } }")
    edges = {
        (dep["path"][-1], node["assetKey"]["path"][-1])
        for node in data["assetNodes"]
        for dep in node["dependencyKeys"]
    }
    assert EXPECTED_EDGES <= edges, EXPECTED_EDGES - edges

    data = _graphql(
        dagster_dev,
        "{ repositoriesOrError { ... on RepositoryConnection { nodes { "
        "schedules { name cronSchedule } sensors { name } jobs { name } } } } }",
    )
    repo = data["repositoriesOrError"]["nodes"][0]
    schedules = {s["name"]: s["cronSchedule"] for s in repo["schedules"]}
    assert schedules["weekly_retrain_schedule"] == "0 3 * * 1"
    assert "daily_ingest_schedule" in schedules
    assert "drift_sensor" in {s["name"] for s in repo["sensors"]}
    assert {"ingest_job", "retrain_job"} <= {j["name"] for j in repo["jobs"]}

    chromium = find_chromium()
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / "lineage.png"
    shot.unlink(missing_ok=True)
    asyncio.run(_screenshot_via_devtools(chromium, f"{dagster_dev}/asset-groups", shot, tmp_path / "chrome"))
    assert shot.exists() and shot.stat().st_size > 20_000  # a rendered page, not a blank one
