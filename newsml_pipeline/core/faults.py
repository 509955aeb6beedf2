"""Which failures are worth retrying: a transient fault (a dropped connection, a timeout, a server that
said "try again") may pass on its own; anything else — a config error, a gate verdict, a store that
refuses to lose rows, a bug — fails the same way every time, so retrying it only delays the alert.

The orchestration layer (defs/retries.py) retries the first kind with backoff and stops on the second.
"""

from __future__ import annotations

import functools
import socket

# MLflow's error codes for "the server could not answer now" (mlflow.protos.databricks_pb2.ErrorCode).
TRANSIENT_MLFLOW_CODES = frozenset({"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "DEADLINE_EXCEEDED"})


@functools.cache
def _transient_types() -> tuple[type[BaseException], ...]:
    """Exception types that mean "the network or a shared service failed this time"."""
    import httpx
    import psycopg
    import requests.exceptions
    import sqlalchemy.exc

    return (
        ConnectionError,  # refused, reset, aborted, broken pipe
        TimeoutError,
        socket.gaierror,  # DNS lookup failed
        httpx.TransportError,  # the crawler's client: connect/read timeouts, network errors
        requests.exceptions.ConnectionError,  # MLflow's REST client
        requests.exceptions.Timeout,
        psycopg.OperationalError,  # the Postgres warehouse: connection lost, server restarting, deadlock
        sqlalchemy.exc.OperationalError,  # MLflow's SQL store: "database is locked", connection lost
    )


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and the exceptions it was raised from or during (MLflow wraps requests' errors)."""
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and all(cur is not s for s in seen):
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def is_transient(exc: BaseException) -> bool:
    """True when `exc` (or an exception it wraps) is a network or shared-service fault."""
    for e in _chain(exc):
        if isinstance(e, _transient_types()):
            return True
        if getattr(e, "error_code", None) in TRANSIENT_MLFLOW_CODES:
            return True
    return False
