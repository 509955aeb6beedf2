"""Drift detection over the scored stream: one river ADWIN per monitored signal.

ADWIN keeps an adaptive window of recent values and drops its older part when the two parts'
means differ more than chance allows at significance `delta`; the size of the dropped part and
the means on either side of the cut are what a person wants to see in a drift alert, so every
detection becomes a `DriftEvent` carrying them.

Detection state must survive a daemon restart and continue *identically* (same detections at
the same positions), so the detectors are pickled (river's ADWIN is a Rust object that pickles
its whole window) inside a versioned, checksummed envelope. Pickle is only ever read from files
this module wrote under `$NEWSML_HOME/monitoring/`; the checksum catches truncation and
corruption (not tampering), and a bad file is a clear `DriftStateError`, never a silent reset.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from newsml_pipeline.core.monitoring.signals import (
    LABEL_MIX_KEY,
    LABELLER_SIGNALS,
    NO_FIT_BELOW,
    SignalBatch,
    check_signal_names,
    extract_signals,
)

if TYPE_CHECKING:  # river pulls in sklearn and pandas: imported where detectors are built
    from river.drift import ADWIN

log = logging.getLogger(__name__)

STATE_VERSION = 1
# label_mix runs one ADWIN per category, each at delta / LABEL_MIX_SPLIT: a Bonferroni split so
# that a schema of up to ten classes (+ abstentions) raises no more false alarms than one signal.
LABEL_MIX_SPLIT = 10
# A category first seen after n rows had share 0 over them: its new detector is fed that many
# zeros (at most this many, ADWIN's window on a stable stream rarely holds more that matter).
LABEL_MIX_PRIME_CAP = 5_000
_MAGIC = b"NEWSML-DRIFT-STATE\n"
_DIGEST = 32  # sha256


class DriftStateError(RuntimeError):
    """A saved drift state cannot be used (corrupt, truncated, other format or version)."""


@dataclass(frozen=True)
class DriftEvent:
    """One detection: ADWIN cut its window for `signal` at global row `position`.

    mean_before / mean_after are the means (in the monitored scale, see `scale`) of the part of
    the window ADWIN dropped and of the part it kept; width is the kept window's size.
    """

    signal: str
    position: int
    mean_before: float
    mean_after: float
    width: int
    dropped: int
    epoch: int
    scale: str
    article_id: str | None = None
    model_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _SignalState:
    detector: ADWIN
    values_since_reset: int = 0
    detections: int = 0


@dataclass
class DriftMonitor:
    """One ADWIN per signal over a stream of scored rows; positions are global row indexes.

    confidence_power: the confidence signal is fed as confidence**power (bounded in [0, 1]);
    a power > 1 spreads the crowded high-confidence end, which made detection of a real topic
    shift faster with no extra false alarms (see bench/drift.py).
    reset_on_model_change: a new champion has its own confidence profile, so when the rows'
    model_version changes the champion's detectors restart instead of reporting the deployment
    as drift; the auto-labeller's (LABELLER_SIGNALS, e.g. no_fit) keep their window, which the
    champion does not change.
    no_fit_below: class_fit under which an article fits no class (signal no_fit).
    label_mix: one detector per auto-label category, created when the category first appears
    (keys "label_mix:<category>", see LABEL_MIX_SPLIT and LABEL_MIX_PRIME_CAP).
    """

    signals: tuple[str, ...]
    delta: float = 0.002
    clock: int = 1
    confidence_power: float = 1.0
    reset_on_model_change: bool = True
    no_fit_below: float = NO_FIT_BELOW
    rows_seen: int = 0
    epoch: int = 0
    model_version: str | None = None
    monitor_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    _states: dict[str, _SignalState] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.signals = check_signal_names(self.signals)
        if not 0 < self.delta < 1:
            raise ValueError(f"ADWIN delta must be in (0, 1), got {self.delta}")
        if self.clock < 1:
            raise ValueError(f"ADWIN clock must be >= 1, got {self.clock}")
        if not -1 <= self.no_fit_below <= 1:
            raise ValueError(f"no_fit_below is a cosine similarity in [-1, 1], got {self.no_fit_below}")
        if self.confidence_power <= 0:
            raise ValueError(f"confidence_power must be > 0, got {self.confidence_power}")
        if not self._states:
            self._states = {s: _SignalState(self._new_detector()) for s in self.signals if s != "label_mix"}

    @classmethod
    def from_config(cls, drift_cfg: Any) -> DriftMonitor:
        """Build from a `DriftConfig` (settings.py)."""
        return cls(
            signals=tuple(drift_cfg.signals),
            delta=drift_cfg.delta,
            clock=drift_cfg.clock,
            confidence_power=drift_cfg.confidence_power,
            reset_on_model_change=drift_cfg.reset_on_model_change,
            no_fit_below=drift_cfg.no_fit_below,
        )

    def matches_config(self, drift_cfg: Any) -> bool:
        """Whether detectors built from `drift_cfg` would be the same as these."""
        return (
            tuple(drift_cfg.signals) == self.signals
            and drift_cfg.delta == self.delta
            and drift_cfg.clock == self.clock
            and drift_cfg.confidence_power == self.confidence_power
            and drift_cfg.reset_on_model_change == self.reset_on_model_change
            and drift_cfg.no_fit_below == self.no_fit_below
        )

    # ------------------------------------------------------------ detection

    def _new_detector(self, *, split: int = 1) -> ADWIN:
        from river.drift import ADWIN

        return ADWIN(delta=self.delta / split, clock=self.clock)

    def _label_mix_categories(self) -> list[str]:
        return [k[len(LABEL_MIX_KEY) :] for k in self._states if k.startswith(LABEL_MIX_KEY)]

    def _add_label_mix_category(self, key: str) -> None:
        """A detector for a category seen for the first time, primed with its zeros so far."""
        seen = max(
            (st.values_since_reset for k, st in self._states.items() if k.startswith(LABEL_MIX_KEY)),
            default=0,
        )
        st = _SignalState(self._new_detector(split=LABEL_MIX_SPLIT))
        for _ in range(min(seen, LABEL_MIX_PRIME_CAP)):
            st.detector.update(0.0)
        st.values_since_reset = seen
        self._states[key] = st

    def scale(self, signal: str) -> str:
        """How values of `signal` (a detector key) are fed to ADWIN (what mean_before/after are means of)."""
        if signal.startswith(LABEL_MIX_KEY):
            return f"share auto_label={signal[len(LABEL_MIX_KEY) :]}"
        if signal == "confidence" and self.confidence_power != 1.0:
            return f"confidence**{self.confidence_power:g}"
        if signal == "no_fit":
            return f"share class_fit<{self.no_fit_below:g}"
        return signal

    def reset(self, *, reason: str = "manual reset", keep: frozenset[str] = frozenset()) -> None:
        """Restart every detector but those in `keep` (e.g. after a retrained model is deployed);
        positions go on."""
        self.epoch += 1
        for name, st in self._states.items():
            if name.split(":", 1)[0] in keep:
                continue
            st.detector = self._new_detector(split=LABEL_MIX_SPLIT if name.startswith(LABEL_MIX_KEY) else 1)
            st.values_since_reset = 0
        log.info("drift detectors reset at row %d (epoch %d): %s", self.rows_seen, self.epoch, reason)

    def update(self, rows: pl.DataFrame) -> list[DriftEvent]:
        """Feed scored rows (stream order) to every detector; returns detections ordered by position.

        rows needs the signals' columns (confidence; label, auto_label); article_id and
        model_version are used when present.
        """
        n = rows.height
        if n == 0:
            return []
        events: list[DriftEvent] = []
        for start, stop, version in self._segments(rows):
            if self.reset_on_model_change and version is not None and version != self.model_version:
                if self.model_version is not None:
                    self.reset(
                        reason=f"model_version changed {self.model_version!r} -> {version!r}",
                        keep=LABELLER_SIGNALS,
                    )
                self.model_version = version
            part = rows.slice(start, stop - start)
            batches = extract_signals(
                part,
                signals=self.signals,
                no_fit_below=self.no_fit_below,
                label_mix_known=self._label_mix_categories(),
            )
            ids = part.get_column("article_id") if "article_id" in part.columns else None
            for key in [k for k in batches if k not in self._states]:
                self._add_label_mix_category(key)
            for key, batch in batches.items():
                events.extend(self._feed(key, batch, base=self.rows_seen, ids=ids))
            self.rows_seen += stop - start
        events.sort(key=lambda e: (e.position, self.signals.index(e.signal)))
        return events

    def _segments(self, rows: pl.DataFrame) -> list[tuple[int, int, str | None]]:
        """[start, stop) runs of equal model_version (one run when the column is absent or ignored)."""
        if not self.reset_on_model_change or "model_version" not in rows.columns:
            return [(0, rows.height, None)]
        versions = rows.get_column("model_version").cast(pl.String)
        changes = (versions != versions.shift(1)).fill_null(True)
        starts = changes.arg_true().to_list()
        if not starts or starts[0] != 0:
            starts = [0, *starts]
        bounds = [*starts, rows.height]
        return [(a, b, versions[a]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def _feed(self, key: str, batch: SignalBatch, *, base: int, ids: pl.Series | None) -> list[DriftEvent]:
        """Feed one detector (`key`: a signal, or label_mix:<category>); events carry batch.name."""
        st = self._states[key]
        name = batch.name
        values = batch.values
        if name == "confidence" and self.confidence_power != 1.0:
            values = np.power(values, self.confidence_power)
        det = st.detector
        events = []
        for offset, x in zip(batch.row_offsets.tolist(), values.tolist(), strict=True):
            # river's ADWIN.update restarts the whole window on the update after a detection.
            width0 = det.width if not det.drift_detected else 0.0
            total0 = det.total if not det.drift_detected else 0.0
            det.update(x)
            if det.drift_detected:  # the window now holds only the kept (recent) part
                width1, total1 = det.width, det.total
                dropped = width0 + 1 - width1
                position = base + offset
                events.append(
                    DriftEvent(
                        signal=name,
                        position=position,
                        mean_before=float((total0 + x - total1) / dropped) if dropped > 0 else float("nan"),
                        mean_after=float(total1 / width1) if width1 > 0 else float("nan"),
                        width=int(width1),
                        dropped=int(dropped),
                        epoch=self.epoch,
                        scale=self.scale(key),
                        article_id=None if ids is None else ids[offset],
                        model_version=self.model_version,
                    )
                )
                st.detections += 1
                log.info(
                    "drift on %s at row %d: mean %.4f -> %.4f (kept window %d, dropped %d)",
                    key,
                    position,
                    events[-1].mean_before,
                    events[-1].mean_after,
                    width1,
                    dropped,
                )
        st.values_since_reset += len(batch)
        return events

    def window_stats(self) -> dict[str, dict[str, Any]]:
        """Per detector (signal, or label_mix:<category>): window mean (monitored scale), width, values
        since reset, detections."""
        out = {}
        for name, st in self._states.items():
            det = st.detector
            fresh = det.drift_detected  # the wrapper discards this window on the next update
            out[name] = {
                "scale": self.scale(name),
                "window_mean": None if det.width == 0 else float(det.estimation),
                "window_width": int(det.width),
                "values_since_reset": st.values_since_reset,
                "detections": st.detections,
                "just_detected": bool(fresh),
            }
        return out

    # ------------------------------------------------------------ persistence

    def to_state(self) -> bytes:
        """Versioned, checksummed bytes; `from_state` continues detection identically."""
        payload = {
            "signals": list(self.signals),
            "delta": self.delta,
            "clock": self.clock,
            "confidence_power": self.confidence_power,
            "reset_on_model_change": self.reset_on_model_change,
            "no_fit_below": self.no_fit_below,
            "rows_seen": self.rows_seen,
            "epoch": self.epoch,
            "model_version": self.model_version,
            "monitor_id": self.monitor_id,
            "detectors": {
                name: {
                    "adwin": st.detector,
                    "values_since_reset": st.values_since_reset,
                    "detections": st.detections,
                }
                for name, st in self._states.items()
            },
        }
        return seal("monitor", payload)

    @classmethod
    def from_state(cls, data: bytes, *, source: str = "drift monitor state") -> DriftMonitor:
        payload = unseal("monitor", data, source=source)
        try:
            states = {
                name: _SignalState(d["adwin"], int(d["values_since_reset"]), int(d["detections"]))
                for name, d in payload["detectors"].items()
            }
            mon = cls(
                signals=tuple(payload["signals"]),
                delta=float(payload["delta"]),
                clock=int(payload["clock"]),
                confidence_power=float(payload["confidence_power"]),
                reset_on_model_change=bool(payload["reset_on_model_change"]),
                # states saved before no_fit existed carry no threshold: the default's
                no_fit_below=float(payload.get("no_fit_below", NO_FIT_BELOW)),
                rows_seen=int(payload["rows_seen"]),
                epoch=int(payload["epoch"]),
                model_version=payload["model_version"],
                monitor_id=str(payload["monitor_id"]),
                _states=states,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise DriftStateError(f"{source}: state is missing or has a bad field ({e!r})") from e
        from river.drift import ADWIN

        plain = {k for k in states if not k.startswith(LABEL_MIX_KEY)}
        mixed = len(plain) < len(states)
        if (
            plain != set(mon.signals) - {"label_mix"}
            or (mixed and "label_mix" not in mon.signals)
            or not all(isinstance(s.detector, ADWIN) for s in states.values())
        ):
            raise DriftStateError(f"{source}: detectors {sorted(states)} do not match signals {mon.signals}")
        return mon


# ---------------------------------------------------------------- envelope + store


def seal(kind: str, payload: Any) -> bytes:
    """magic | sha256(body) | body, body = pickle({format, version, kind, payload})."""
    body = pickle.dumps(
        {"format": "newsml-drift", "version": STATE_VERSION, "kind": kind, "payload": payload},
        protocol=pickle.HIGHEST_PROTOCOL,
    )
    return _MAGIC + hashlib.sha256(body).digest() + body


def unseal(kind: str, data: bytes, *, source: str) -> Any:
    """Inverse of `seal`; any mismatch is a DriftStateError naming `source` and what is wrong."""
    hint = "delete it to restart drift detection from scratch"
    if not isinstance(data, bytes | bytearray):
        raise DriftStateError(f"{source}: expected bytes, got {type(data).__name__}")
    if not data.startswith(_MAGIC):
        raise DriftStateError(f"{source}: not a newsml drift state (bad header); {hint}")
    digest, body = data[len(_MAGIC) : len(_MAGIC) + _DIGEST], data[len(_MAGIC) + _DIGEST :]
    if hashlib.sha256(body).digest() != digest:
        raise DriftStateError(f"{source}: corrupt or truncated (checksum mismatch); {hint}")
    try:
        obj = pickle.loads(body)
    except Exception as e:  # the checksum matched, so this is a code/version incompatibility
        raise DriftStateError(f"{source}: cannot be unpickled ({e!r}); {hint}") from e
    if not isinstance(obj, dict) or obj.get("format") != "newsml-drift":
        raise DriftStateError(f"{source}: unexpected content; {hint}")
    if obj.get("version") != STATE_VERSION:
        raise DriftStateError(
            f"{source}: state version {obj.get('version')!r}, this code reads version {STATE_VERSION}; {hint}"
        )
    if obj.get("kind") != kind:
        raise DriftStateError(f"{source}: holds a {obj.get('kind')!r} state, expected {kind!r}")
    return obj["payload"]


class DriftStateStore:
    """One state file, written atomically (temp file in the same folder + fsync + rename)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def in_home(cls, home: str | Path, *, name: str = "drift_state.bin") -> DriftStateStore:
        """The default location: $NEWSML_HOME/monitoring/<name>."""
        return cls(Path(home) / "monitoring" / name)

    def exists(self) -> bool:
        return self.path.is_file()

    def save_bytes(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load_bytes(self) -> bytes | None:
        """The saved bytes, or None when nothing was saved yet."""
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def save(self, kind: str, payload: Any) -> None:
        self.save_bytes(seal(kind, payload))

    def load(self, kind: str) -> Any | None:
        data = self.load_bytes()
        if data is None:
            return None
        return unseal(kind, data, source=f"drift state file {self.path}")

    def save_monitor(self, monitor: DriftMonitor) -> None:
        self.save_bytes(monitor.to_state())

    def load_monitor(self) -> DriftMonitor | None:
        data = self.load_bytes()
        if data is None:
            return None
        return DriftMonitor.from_state(data, source=f"drift state file {self.path}")


def feed_values(monitor: DriftMonitor, signal: str, values: Sequence[float]) -> list[DriftEvent]:
    """Feed raw values of one signal (one value per row), for synthetic streams and benchmarks."""
    if signal not in monitor.signals:
        raise ValueError(f"signal {signal!r} is not monitored; monitored: {monitor.signals}")
    if signal == "label_mix":
        raise ValueError("label_mix is a stream per category: feed scored rows with DriftMonitor.update")
    vals = np.asarray(values, dtype=np.float64)
    if vals.size and (np.isnan(vals).any() or vals.min() < 0 or vals.max() > 1):
        raise ValueError(f"values of {signal!r} must be numbers in [0, 1]")
    batch = SignalBatch(signal, np.arange(vals.size, dtype=np.int64), vals)
    events = monitor._feed(signal, batch, base=monitor.rows_seen, ids=None)
    monitor.rows_seen += int(vals.size)
    return events
