"""The one predictor behind `newsml predict`, the HTTP endpoint, scoring and the tests.

It serves `models:/<registered model>@champion`: the alias is resolved to a version, that
version's files are downloaded once into a local cache, and the merged transformer is loaded with
the training code's `load_classifier` / `predict_proba` (much faster than going through the
pyfunc wrapper). With no champion yet it answers with the auto-labeler and says so in every
answer's `model_version`. Every `serving.reload_interval_s` it looks at the alias again and swaps
in a new champion without a restart (requests keep using the old model while the new one loads).

With `serving.precision: auto` each load times the allowed precisions on this machine and serves
the fastest (core/serving/probe.py); `precision_choice` says which and why, and the choice is
written beside the cached version (`serving-precision.json`) for `newsml status`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from newsml_pipeline.core.serving.onnx_model import ONNX_PRECISIONS, OnnxBackend, onnx_path
from newsml_pipeline.core.serving.precision import (
    PRECISIONS,
    TORCH_PRECISIONS,
    allowed_precisions,
    hardware_candidates,
    parse_precision_tags,
)
from newsml_pipeline.core.serving.probe import (
    PrecisionChoice,
    describe,
    fastest,
    probe_batch,
    time_candidates,
)
from newsml_pipeline.core.training.inputs import format_input
from newsml_pipeline.settings import LabelsConfig, ServingConfig, Settings

log = logging.getLogger(__name__)

AUTO_LABELER_VERSION = "auto-labeler"
MAX_TITLE_CHARS = 2_000
CHOICE_FILE = "serving-precision.json"


class InvalidRecordError(ValueError):
    """A record to classify is malformed; the message names the record index and the field."""

    def __init__(self, reason: str, *, index: int | None = None) -> None:
        self.reason = reason
        self.index = index
        super().__init__(reason if index is None else f"article {index}: {reason}")


class ModelLoadError(RuntimeError):
    """The champion's files could not be found or loaded."""


class Backend(Protocol):
    """What the predictor needs from a model: its version label, class names and probabilities."""

    version: str
    labels: list[str]

    def predict_proba(self, titles: list[str | None], texts: list[str]) -> np.ndarray: ...


# ---------------------------------------------------------------- validation


def validate_records(records: Any) -> list[dict[str, Any]]:
    """Check a list of {title?, text, id?} objects; raise InvalidRecordError naming the bad one."""
    if not isinstance(records, list | tuple):
        raise InvalidRecordError(f"expected a list of article objects, got {type(records).__name__}")
    if not records:
        raise InvalidRecordError("no articles to classify (empty list)")
    clean = []
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise InvalidRecordError(f"expected an object with 'text', got {type(rec).__name__}", index=i)
        text = rec.get("text")
        title = rec.get("title")
        if text is None:
            raise InvalidRecordError("field 'text' is required", index=i)
        if not isinstance(text, str):
            raise InvalidRecordError(f"field 'text' must be a string, got {type(text).__name__}", index=i)
        if title is not None and not isinstance(title, str):
            raise InvalidRecordError(f"field 'title' must be a string, got {type(title).__name__}", index=i)
        if not text.strip():
            raise InvalidRecordError("field 'text' is empty", index=i)
        if title is not None and len(title) > MAX_TITLE_CHARS:
            raise InvalidRecordError(f"field 'title' is longer than {MAX_TITLE_CHARS} characters", index=i)
        out = {"title": title, "text": text}
        if "id" in rec:
            if not isinstance(rec["id"], str | int) or isinstance(rec["id"], bool):
                raise InvalidRecordError("field 'id' must be a string or integer", index=i)
            out["id"] = rec["id"]
        clean.append(out)
    return clean


# ---------------------------------------------------------------- backends


def find_classifier_dir(root: Path) -> Path:
    """The directory under `root` holding the merged classifier: config.json + weights, preferring
    one with label_map.json, then the shallowest (a logged pyfunc nests it under artifacts/)."""
    weights = ("model.safetensors", "pytorch_model.bin")
    candidates = sorted(
        (p.parent for p in Path(root).rglob("config.json") if any((p.parent / w).exists() for w in weights)),
        key=lambda p: (not (p / "label_map.json").exists(), len(p.parts), str(p)),
    )
    if not candidates:
        raise ModelLoadError(
            f"no classifier directory (config.json + model weights) in the model files at {root}"
        )
    return candidates[0]


def _quantize_int8(model: Any) -> Any:
    """Dynamic int8 quantization of the Linear layers (weights int8, activations quantized per
    batch): a CPU speed-up for encoders; the embedding and softmax stay fp32."""
    import torch

    if next(model.parameters()).device.type != "cpu":
        raise ValueError("serving.precision int8 is CPU only; use auto or bf16 on a GPU")
    return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


class TransformerBackend:
    """A merged sequence-classification model directory, loaded once."""

    def __init__(
        self,
        model_dir: Path,
        *,
        version: str,
        max_length: int,
        batch_size: int,
        device: str | None = None,
        precision: str = "auto",
    ) -> None:
        from newsml_pipeline.core.training.model_io import load_classifier

        if precision not in ("auto", "fp32", "bf16", "fp16", "int8"):
            raise ValueError(f"unknown serving precision {precision!r}; use auto, fp32, bf16, fp16 or int8")
        self.version = version
        self.model_dir = Path(model_dir)
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        t0 = time.perf_counter()
        self.model, self.tokenizer, labels = load_classifier(self.model_dir, device=device)
        self.labels = list(labels)
        if precision == "int8":
            self.model = _quantize_int8(self.model)
        log.info(
            "loaded model %s from %s in %.1fs (%s)", version, model_dir, time.perf_counter() - t0, precision
        )

    def with_precision(self, precision: str) -> TransformerBackend:
        """The same loaded model under another autocast precision (fp32 / bf16 / fp16): the
        precision probe times them without loading the weights once per candidate."""
        if precision not in TORCH_PRECISIONS or self.precision == "int8":
            raise ValueError(f"with_precision shares autocast precisions only, not {precision!r}")
        twin = object.__new__(TransformerBackend)
        twin.__dict__.update(self.__dict__)
        twin.precision = precision
        return twin

    @property
    def _bf16(self) -> bool | None:
        return {"auto": None, "fp32": False, "bf16": True, "fp16": False, "int8": False}[self.precision]

    def predict_proba(self, titles: list[str | None], texts: list[str]) -> np.ndarray:
        from newsml_pipeline.core.training.model_io import predict_proba

        inputs = [format_input(t, x) for t, x in zip(titles, texts, strict=True)]
        return predict_proba(
            self.model,
            self.tokenizer,
            inputs,
            batch_size=self.batch_size,
            max_length=self.max_length,
            device=self.device,
            bf16=self._bf16,
            fp16=self.precision == "fp16",
        )


class AutoLabelerBackend:
    """The auto-labeler as a stand-in model before the first deployment.

    Scores are the label model's posteriors over the labeling functions' votes for the articles
    of the request (the same `compute_votes` + Dawid-Skene the auto-labeler runs per partition;
    its Dirichlet prior keeps a one-article batch well defined). Slower than a champion: it runs
    spaCy and the sentence embedder.
    """

    version = AUTO_LABELER_VERSION

    def __init__(self, labels_cfg: LabelsConfig) -> None:
        self.labels_cfg = labels_cfg
        self.labels = list(labels_cfg.names)

    def predict_proba(self, titles: list[str | None], texts: list[str]) -> np.ndarray:
        from newsml_pipeline.core.labeling.label_model import DawidSkene
        from newsml_pipeline.core.labeling.pipeline import compute_votes, dependent_groups

        votes, names, _ = compute_votes(
            [t or "" for t in titles], texts, [None] * len(texts), labels_cfg=self.labels_cfg
        )
        k = len(self.labels)
        # The same dependent groups as the auto-labeler, so correlated functions (zero_shot and
        # transductive read the same embeddings) are not counted as independent evidence here either.
        groups = dependent_groups(names, self.labels_cfg.dependent_functions)
        proba = DawidSkene(k=k, groups=groups).fit(votes).predict_proba(votes)
        if proba.shape != (len(texts), k):
            raise RuntimeError(
                f"auto-labeler gave probabilities of shape {proba.shape}, expected ({len(texts)}, {k})"
            )
        return proba


# ---------------------------------------------------------------- champion resolution


@dataclass(frozen=True)
class ChampionRef:
    name: str
    version: str
    source: str
    tags: Mapping[str, str] = field(default_factory=dict)


class ChampionResolver:
    """Looks up `<name>@champion` and materialises that version's files in a local cache."""

    def __init__(self, *, tracking_uri: str, registered_model: str, cache_dir: Path) -> None:
        self.tracking_uri = tracking_uri
        self.registered_model = registered_model
        self.cache_dir = Path(cache_dir)

    def _client(self):  # noqa: ANN202 - MlflowClient, imported lazily (mlflow import is slow)
        from newsml_pipeline.core.registry.tracking import store_client

        return store_client(self.tracking_uri)

    def current(self) -> ChampionRef | None:
        from newsml_pipeline.core.registry.aliases import get_champion

        mv = get_champion(self._client(), self.registered_model)
        if mv is None:
            return None
        return ChampionRef(self.registered_model, str(mv.version), mv.source, dict(mv.tags or {}))

    def local_dir(self, ref: ChampionRef) -> Path:
        """Download (once) the version's files; a completed download is marked and reused."""
        import mlflow.artifacts

        target = self.cache_dir / ref.name / ref.version
        done = target / ".complete"
        if not done.exists():
            import shutil
            import uuid

            tmp = target.with_name(f"{ref.version}.partial-{uuid.uuid4().hex}")
            tmp.mkdir(parents=True, exist_ok=True)
            log.info("downloading %s version %s into %s", ref.name, ref.version, target)
            try:
                # Resolve through this client (not mlflow's global registry URI) to the storage location.
                location = self._client().get_model_version_download_uri(ref.name, ref.version)
                mlflow.artifacts.download_artifacts(
                    artifact_uri=location, dst_path=str(tmp), tracking_uri=self.tracking_uri
                )
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            if done.exists():  # another process finished the same download first: use theirs
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                if target.exists():  # leftovers of an interrupted download
                    shutil.rmtree(target)
                tmp.rename(target)
                done.touch()
        return find_classifier_dir(target)

    def record_choice(self, ref: ChampionRef, choice: PrecisionChoice) -> None:
        """Write the precision choice beside the cached version (read by `newsml status`)."""
        target = self.cache_dir / ref.name / ref.version
        record = {
            **choice.as_dict(),
            "version": ref.version,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        tmp = target / f".{CHOICE_FILE}.{os.getpid()}"
        try:
            tmp.write_text(json.dumps(record, indent=2))
            tmp.replace(target / CHOICE_FILE)
        except OSError as e:  # the choice still serves; only the status line lacks it
            log.warning("could not record the precision choice in %s: %s", target, e)


def read_choice(cache_dir: Path, registered_model: str, version: str) -> dict[str, Any] | None:
    """The last precision choice a serving process recorded for this version (None if none)."""
    path = Path(cache_dir) / registered_model / version / CHOICE_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())


# ---------------------------------------------------------------- predictor


class Predictor:
    """Thread-safe: inference runs one batch at a time (2 cores gain nothing from overlap)."""

    def __init__(
        self,
        *,
        resolver: ChampionResolver | None,
        labels_cfg: LabelsConfig,
        serving_cfg: ServingConfig,
        max_length: int = 256,
        device: str | None = None,
        fallback: Callable[[], Backend] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.resolver = resolver
        self.labels_cfg = labels_cfg
        self.serving_cfg = serving_cfg
        self.max_length = max_length
        self.device = device
        self._fallback_factory = fallback or (lambda: AutoLabelerBackend(labels_cfg))
        self._clock = clock
        self._infer_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._backend: Backend | None = None
        # Which precision serves and why (None while the auto-labeler answers).
        self.precision_choice: PrecisionChoice | None = None
        self._last_check = float("-inf")
        # Why the last champion check/reload failed (None once one succeeds): /health says degraded.
        self.reload_error: str | None = None
        self.reload(force=True)

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> Predictor:
        """The predictor for this NEWSML_HOME / config (used by the CLI and the HTTP server)."""
        cfg = settings.config
        resolver = ChampionResolver(
            tracking_uri=settings.mlflow_tracking_uri(),
            registered_model=cfg.mlflow.registered_model,
            cache_dir=settings.models_dir / "serving-cache",
        )
        kwargs.setdefault("max_length", cfg.serving.max_length or cfg.training.max_length)
        return cls(resolver=resolver, labels_cfg=cfg.labels, serving_cfg=cfg.serving, **kwargs)

    @property
    def model_version(self) -> str:
        assert self._backend is not None
        return self._backend.version

    @property
    def labels(self) -> list[str]:
        assert self._backend is not None
        return list(self._backend.labels)

    def _load(self, ref: ChampionRef | None) -> tuple[Backend, PrecisionChoice | None]:
        if ref is None:
            log.warning("no champion for this registered model yet: answering with the auto-labeler")
            return self._fallback_factory(), None
        assert self.resolver is not None
        try:
            model_dir = self.resolver.local_dir(ref)
        except ModelLoadError:
            raise
        except Exception as e:  # MLflow/IO errors: re-raise with what we were doing
            raise ModelLoadError(f"could not fetch the files of {ref.name} version {ref.version}: {e}") from e
        wanted = self.serving_cfg.precision
        if wanted == "auto":
            backend, choice = self._probe_auto(ref, model_dir)
        else:
            backend = self._build(model_dir, ref.version, wanted)
            choice = PrecisionChoice(
                precision=wanted,
                reason="set by serving.precision (not auto): not measured",
                device=self._device_type(),
            )
        unknown = sorted(set(backend.labels) - set(self.labels_cfg.names))
        if unknown:
            log.warning("champion %s predicts labels not in the configured schema: %s", ref.version, unknown)
        self.resolver.record_choice(ref, choice)
        return backend, choice

    def _device_type(self) -> str:
        from newsml_pipeline.core.training.model_io import _device

        return _device(self.device)

    def _build(
        self, model_dir: Path, version: str, precision: str, *, share: TransformerBackend | None = None
    ) -> Backend:
        """The backend for one precision; `share` = an already loaded torch model to reuse."""
        if precision in ONNX_PRECISIONS:
            return OnnxBackend(
                model_dir,
                version=version,
                precision=precision,
                max_length=self.max_length,
                batch_size=self.serving_cfg.batch_size,
                threads=self.serving_cfg.onnx_threads,
            )
        if share is not None and precision in TORCH_PRECISIONS:
            return share.with_precision(precision)
        return TransformerBackend(
            model_dir,
            version=version,
            max_length=self.max_length,
            batch_size=self.serving_cfg.batch_size,
            device=self.device,
            precision=precision,
        )

    def _probe_auto(self, ref: ChampionRef, model_dir: Path) -> tuple[Backend, PrecisionChoice]:
        """serving.precision auto: time the allowed, natively run precisions here; serve the fastest.

        Allowed = the evaluation's quality rule over the version's tags (core/serving/precision.py);
        the tags' ms/article (measured where the model was registered) only order the probe.
        """
        from newsml_pipeline.core.training.device import has_native_bf16  # torch: loaded where used

        cfg = self.serving_cfg
        device = self._device_type()
        onnx_have = [p for p in ONNX_PRECISIONS if onnx_path(model_dir, p).exists()]
        candidates, not_used = hardware_candidates(
            device=device, native_bf16=has_native_bf16(device), onnx_available=onnx_have
        )
        tags = parse_precision_tags(ref.tags)
        allowed, rejected = allowed_precisions(candidates, tags, max_f1_loss=cfg.auto_max_f1_loss)
        not_used.update(rejected)
        hint = {p: m["ms_per_article"] for p, m in tags.items()}
        order = sorted(allowed, key=lambda p: (hint.get(p, float("inf")), PRECISIONS.index(p)))
        torch_model: dict[str, TransformerBackend] = {}

        def build(precision: str) -> Backend:
            if precision in TORCH_PRECISIONS and "shared" in torch_model:
                return torch_model["shared"].with_precision(precision)
            backend = self._build(model_dir, ref.version, precision)
            if isinstance(backend, TransformerBackend):
                torch_model["shared"] = backend
            return backend

        n = cfg.precision_probe_articles
        titles, texts = probe_batch(n, max_length=self.max_length)
        result = time_candidates(order, build, titles, texts, budget_s=cfg.precision_probe_budget_s)
        not_used.update(result.not_used)
        if not result.measured_ms:
            raise ModelLoadError(
                f"no precision of {ref.name} version {ref.version} could run here: {result.not_used}"
            )
        chosen = fastest(result.measured_ms)
        choice = PrecisionChoice(
            precision=chosen,
            reason=describe(result.measured_ms, chosen),
            device=device,
            measured_ms=result.measured_ms,
            hint_ms=hint,
            not_used=not_used,
            probe=f"{n} articles x up to {self.max_length} tokens",
            probe_s=round(result.seconds, 3),
        )
        log.info(
            "auto precision for version %s on %s: %s; probe took %.2fs; not candidates: %s",
            ref.version,
            device,
            choice.reason,
            result.seconds,
            not_used or "none",
        )
        return result.backends[chosen], choice

    def reload(self, *, force: bool = False) -> bool:
        """Look at the alias now (force) or when the reload interval has passed; True if swapped.

        On the first load errors propagate (no model = no service). Later, a failed check or load
        is logged and the current model keeps serving.
        """
        now = self._clock()
        if not force and now - self._last_check < self.serving_cfg.reload_interval_s:
            return False
        if not self._reload_lock.acquire(blocking=force):
            return False  # another thread is already checking
        try:
            self._last_check = now
            current = self._backend.version if self._backend is not None else None
            try:
                ref = self.resolver.current() if self.resolver is not None else None
                wanted = ref.version if ref is not None else AUTO_LABELER_VERSION
                if wanted == current:
                    self.reload_error = None
                    return False
                backend, choice = self._load(ref)
            except Exception as e:
                if self._backend is None:
                    raise
                self.reload_error = f"{type(e).__name__}: {e}"[:500]
                log.exception("champion check/reload failed; still serving %s", current)
                return False
            self.reload_error = None
            self._backend = backend
            self.precision_choice = choice
            log.info("now serving model version %s (was %s)", backend.version, current)
            return True
        finally:
            self._reload_lock.release()

    @property
    def is_fallback(self) -> bool:
        """True while the auto-labeler answers (no champion yet)."""
        return self.model_version == AUTO_LABELER_VERSION

    def predict(self, records: Sequence[Mapping[str, Any]], *, reload: bool = True) -> list[dict[str, Any]]:
        """Classify articles ({title?, text, id?}); returns label, confidence, scores, model_version.

        Raises InvalidRecordError for malformed input. Work is done in `serving.batch_size` chunks
        of articles of similar length (longest first), so a short article is not padded to a long
        neighbour's length; answers come back in input order.
        reload=False skips the alias check (the HTTP server reloads from its own background task so
        a request never waits for a model download).
        """
        clean = validate_records(records)
        if reload:
            self.reload()
        backend = self._backend
        assert backend is not None
        # Characters are a cheap stand-in for tokens here; the backend sorts by tokens within a chunk.
        order = sorted(
            range(len(clean)), key=lambda i: -(len(clean[i]["text"]) + len(clean[i]["title"] or ""))
        )
        answers: list[dict[str, Any] | None] = [None] * len(clean)
        bs = self.serving_cfg.batch_size
        for start in range(0, len(clean), bs):
            positions = order[start : start + bs]
            chunk = [clean[i] for i in positions]
            with self._infer_lock:
                proba = backend.predict_proba([r["title"] for r in chunk], [r["text"] for r in chunk])
            proba = np.asarray(proba, dtype=float)
            if proba.shape != (len(chunk), len(backend.labels)):
                raise RuntimeError(
                    f"model {backend.version} returned shape {proba.shape} for {len(chunk)} articles"
                )
            best = proba.argmax(axis=1)
            for pos, rec, row, b in zip(positions, chunk, proba, best, strict=True):
                answer = {
                    "label": backend.labels[b],
                    "confidence": round(float(row[b]), 6),
                    "scores": {name: round(float(p), 6) for name, p in zip(backend.labels, row, strict=True)},
                    "model_version": backend.version,
                }
                if "id" in rec:
                    answer = {"id": rec["id"], **answer}
                answers[pos] = answer
        out = [a for a in answers if a is not None]
        if len(out) != len(clean):  # every position is in exactly one chunk
            raise RuntimeError(f"{len(clean) - len(out)} articles got no answer")
        return out

    def health(self, *, reload: bool = True) -> dict[str, Any]:
        """Status for GET /health (also a chance for the reload check to run, unless reload=False).

        `degraded` = still answering, but the last champion check/reload failed (`reload_error`
        says why), so the model serving may not be the champion.
        """
        if reload:
            self.reload()
        return {
            "status": "degraded" if self.reload_error else "ok",
            **({"reload_error": self.reload_error} if self.reload_error else {}),
            "model_version": self.model_version,
            "registered_model": self.resolver.registered_model if self.resolver else None,
            "labels": self.labels,
            "precision": self.precision_choice.as_dict() if self.precision_choice else None,
        }
