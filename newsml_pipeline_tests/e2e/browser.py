"""Debian's Chromium for the browser tests: found, or installed with apt-get (root), or a skip."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def chromium() -> str:
    """Path of the chromium binary; skips the test with the reason when there is none to be had."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("Debian chromium is not installed and cannot be installed here (needs root + apt-get)")
    done = subprocess.run(
        ["apt-get", "install", "-y", "-q", "chromium"], capture_output=True, text=True, timeout=900
    )
    found = shutil.which("chromium")
    if not found:
        pytest.skip(f"apt-get install chromium failed (rc {done.returncode}): {done.stderr[-500:]}")
    return found
