"""Helpers for tests that start a real server process: a free loopback port, wait until healthy."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen | None, timeout: float = 60) -> None:
    """Poll `url`/health until it answers 200; fail early (with its stderr) if `proc` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not come up within {timeout}s")


def start_label_page(
    env: dict[str, str], *, user: str | None, host: str = "127.0.0.1"
) -> tuple[str, subprocess.Popen]:
    """`newsml label` as a real subprocess with `env` (NEWSML_HOME, NEWSML_CONFIG); (URL, process)
    once it answers /health (reached on 127.0.0.1 whichever `host` it binds)."""
    port = free_port()
    newsml = Path(sys.executable).with_name("newsml")
    cmd = [str(newsml)] if newsml.exists() else [sys.executable, "-m", "newsml_pipeline.cli"]
    proc = subprocess.Popen(
        [*cmd, "label", "--host", host, "--port", str(port), *(["--user", user] if user else [])],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
    except BaseException:
        stop_process(proc)
        raise
    return url, proc


def stop_process(proc: subprocess.Popen) -> None:
    """Ctrl-C, as a person stops it; killed if it has not exited within 20 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
