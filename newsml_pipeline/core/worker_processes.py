"""Worker processes never outlive the process that started them.

A `ProcessPoolExecutor` worker blocks reading its call queue; when its parent is SIGKILLed (OOM,
a hard cancel) the pipe never reports EOF because the worker holds both ends, so it would wait
forever. Every pool of this project runs `exit_with_parent` in its initializer.
"""

from __future__ import annotations

import os
import threading
import time

# How often a worker checks that the process which started it is still alive.
PARENT_POLL_S = 0.5


def exit_with_parent(parent_pid: int, *, poll_s: float = PARENT_POLL_S) -> None:
    """Start a daemon thread that ends this (worker) process once `parent_pid` is gone."""

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent_pid:
                os._exit(3)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
