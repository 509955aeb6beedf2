"""Retries: transient faults retry with backoff and jitter; verdicts and errors fail at once.

`TRANSIENT_RETRY` goes on the steps that touch the network or a shared service (the crawl, warehouse
writes that may go to Postgres, MLflow calls). Dagster retries any exception under a RetryPolicy
except a `Failure(allow_retries=False)`, so `retry_transient_only` turns every exception that
core.faults does not call transient into one: a config error, a refused write, a bug or a
`dg.Failure` the body raises (unless it is a `TransientFailure`) fails on the first attempt. A gate verdict is a check result, not an exception, and is never retried; a
skipped retrain never starts a run. Runs whose process died (a preempted pod, an OOM-killed run
worker) are re-executed from failure by the instance's `run_retries` (dagster.yaml, deploy/).
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import dagster as dg

from newsml_pipeline.core.faults import is_transient

P = ParamSpec("P")
R = TypeVar("R")

# 3 retries after 10 s, 20 s, 40 s (± up to 100% jitter so parallel steps do not retry in lockstep):
# long enough for a dropped connection or a restarting server, short enough to alert within minutes.
# NEWSML_RETRY_DELAY_S sets the first delay (read when the code location loads, in every step
# process alike): a flakier network wants longer, the test suite uses a fraction of a second.
RETRY_DELAY_ENV = "NEWSML_RETRY_DELAY_S"


def _first_delay() -> float:
    raw = os.environ.get(RETRY_DELAY_ENV, "10")
    try:
        delay = float(raw)
    except ValueError:
        raise ValueError(f"{RETRY_DELAY_ENV}={raw!r} is not a number of seconds") from None
    if delay < 0:
        raise ValueError(f"{RETRY_DELAY_ENV}={raw!r} must be ≥ 0 seconds")
    return delay


TRANSIENT_RETRY = dg.RetryPolicy(
    max_retries=3, delay=_first_delay(), backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


class TransientFailure(dg.Failure):
    """A Failure the body raises for a fault that may pass (every source unreachable at once):
    the RetryPolicy retries it, where any other Failure from a body is final."""


def _classified(e: Exception) -> Exception:
    """A transient fault as it is (the RetryPolicy retries it); anything else as a Failure that
    is not retried."""
    if is_transient(e):
        return e
    return dg.Failure(
        description=f"{type(e).__name__}: {e} (not a transient fault: not retried)", allow_retries=False
    )


def _reraise_classified(e: Exception) -> None:
    """Re-raise `e` as it is when transient or a RetryRequested, else as a Failure that is not
    retried.

    A `dg.Failure` the body raises is its own verdict ("nothing to split yet", a missing model):
    Dagster would retry it (allow_retries defaults to True), so a retrain_job on an empty
    warehouse waited ~2 minutes of backoff before failing the same way four times. It stays
    retryable only when what caused it is transient.
    """
    if isinstance(e, dg.RetryRequested):
        raise e  # the body asked for a retry itself
    if isinstance(e, dg.Failure):
        transient = isinstance(e, TransientFailure) or (e.__cause__ is not None and is_transient(e.__cause__))
        if not e.allow_retries or transient:
            raise e
        raise dg.Failure(
            description=f"{e.description} (not a transient fault: not retried)",
            metadata=e.metadata,
            allow_retries=False,
        ) from e
    err = _classified(e)
    if err is e:
        raise e
    raise err from e


def retry_transient_only(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap an asset body so only transient faults reach the RetryPolicy; the rest fail at once.
    A generator body (an asset that may yield no output) stays a generator, so Dagster still
    reads its outputs from what it yields."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                yield from fn(*args, **kwargs)
            except Exception as e:
                _reraise_classified(e)

        return gen_wrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            _reraise_classified(e)
            raise  # unreachable: _reraise_classified always raises

    return wrapper
