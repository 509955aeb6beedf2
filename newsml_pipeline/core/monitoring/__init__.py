"""core/monitoring: drift detection (river ADWIN) over the scored stream, and the drift sensor's logic."""

from newsml_pipeline.core.monitoring.drift import DriftEvent, DriftMonitor, DriftStateError, DriftStateStore
from newsml_pipeline.core.monitoring.sensor_logic import (
    ScoredCursor,
    TickResult,
    evaluate_tick,
    read_new_scored_rows,
    reset_detectors,
    run_drift_tick,
)
from newsml_pipeline.core.monitoring.signals import SIGNALS, SignalError, extract_signals

__all__ = [
    "SIGNALS",
    "DriftEvent",
    "DriftMonitor",
    "DriftStateError",
    "DriftStateStore",
    "ScoredCursor",
    "SignalError",
    "TickResult",
    "evaluate_tick",
    "extract_signals",
    "read_new_scored_rows",
    "reset_detectors",
    "run_drift_tick",
]
