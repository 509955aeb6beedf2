"""The one predictor behind `newsml predict`, the HTTP endpoint, scoring and the tests.

It serves `models:/<registered model>@champion`: the alias is resolved to a version, that
version's files are downloaded once into a local cache, and the merged transformer is loaded with
the training code's `load_classifier` / `predict_proba` (much faster than going through the
pyfunc wrapper). With no champion yet it answers with the auto-labeler and says so in every
answer's `model_version`. Every `serving.reload_interval_s` it looks at the alias again and swaps
in a new champion without a restart (requests keep using the old model while the new one loads).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from newsml_pipeline.core.serving.onnx_model import ONNX_PRECISIONS, OnnxBackend, onnx_path
from newsml_pipeline.core.serving.precision import choose_precision, parse_precision_tags
from newsml_pipeline.core.training.inputs import format_input
from newsml_pipeline.settings import LabelsConfig, ServingConfig, Settings

log = logging.getLogger(__name__)

AUTO_LABELER_VERSION = "auto-labeler"
MAX_TITLE_CHARS = 2_000


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

        if precision not in ("auto", "fp32", "bf16", "int8"):
            raise ValueError(f"unknown serving precision {precision!r}; use auto, fp32, bf16 or int8")
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

    @property
    def _bf16(self) -> bool | None:
        return {"auto": None, "fp32": False, "bf16": True, "int8": False}[self.precision]

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

    def _load(self, ref: ChampionRef | None) -> Backend:
        if ref is None:
            log.warning("no champion for this registered model yet: answering with the auto-labeler")
            return self._fallback_factory()
        assert self.resolver is not None
        try:
            model_dir = self.resolver.local_dir(ref)
        except ModelLoadError:
            raise
        except Exception as e:  # MLflow/IO errors: re-raise with what we were doing
            raise ModelLoadError(f"could not fetch the files of {ref.name} version {ref.version}: {e}") from e
        precision = self.resolve_precision(ref, model_dir)
        backend: Backend
        if precision in ONNX_PRECISIONS:
            backend = OnnxBackend(
                model_dir,
                version=ref.version,
                precision=precision,
                max_length=self.max_length,
                batch_size=self.serving_cfg.batch_size,
                threads=self.serving_cfg.onnx_threads,
            )
        else:
            backend = TransformerBackend(
                model_dir,
                version=ref.version,
                max_length=self.max_length,
                batch_size=self.serving_cfg.batch_size,
                device=self.device,
                precision=precision,
            )
        unknown = sorted(set(backend.labels) - set(self.labels_cfg.names))
        if unknown:
            log.warning("champion %s predicts labels not in the configured schema: %s", ref.version, unknown)
        return backend

    def resolve_precision(self, ref: ChampionRef, model_dir: Path) -> str:
        """serving.precision, or for `auto` the evaluation's choice from the version's tags (see
        core/serving/precision.py); `auto` without usable tags = torch with bf16 where native."""
        wanted = self.serving_cfg.precision
        if wanted != "auto":
            return wanted
        measured = parse_precision_tags(ref.tags)
        chosen = choose_precision(measured, max_f1_loss=self.serving_cfg.auto_max_f1_loss)
        if chosen is None:
            log.info("version %s has no per-precision evaluation tags: serving torch (auto)", ref.version)
            return "auto"
        if chosen in ONNX_PRECISIONS and not onnx_path(model_dir, chosen).exists():
            log.warning(
                "auto chose %s for version %s but its files are missing; serving torch fp32",
                chosen,
                ref.version,
            )
            return "fp32"
        ms = measured[chosen]
        log.info(
            "auto precision for version %s: %s (macro-F1 %.4f vs fp32 %.4f, %.2f ms/article)",
            ref.version,
            chosen,
            ms["macro_f1"],
            measured["fp32"]["macro_f1"],
            ms["ms_per_article"],
        )
        return chosen

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
                backend = self._load(ref)
            except Exception as e:
                if self._backend is None:
                    raise
                self.reload_error = f"{type(e).__name__}: {e}"[:500]
                log.exception("champion check/reload failed; still serving %s", current)
                return False
            self.reload_error = None
            self._backend = backend
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

        Raises InvalidRecordError for malformed input. Work is done in `serving.batch_size` chunks.
        reload=False skips the alias check (the HTTP server reloads from its own background task so
        a request never waits for a model download).
        """
        clean = validate_records(records)
        if reload:
            self.reload()
        backend = self._backend
        assert backend is not None
        out: list[dict[str, Any]] = []
        bs = self.serving_cfg.batch_size
        for start in range(0, len(clean), bs):
            chunk = clean[start : start + bs]
            with self._infer_lock:
                proba = backend.predict_proba([r["title"] for r in chunk], [r["text"] for r in chunk])
            proba = np.asarray(proba, dtype=float)
            if proba.shape != (len(chunk), len(backend.labels)):
                raise RuntimeError(
                    f"model {backend.version} returned shape {proba.shape} for {len(chunk)} articles"
                )
            best = proba.argmax(axis=1)
            for rec, row, b in zip(chunk, proba, best, strict=True):
                answer = {
                    "label": backend.labels[b],
                    "confidence": round(float(row[b]), 6),
                    "scores": {name: round(float(p), 6) for name, p in zip(backend.labels, row, strict=True)},
                    "model_version": backend.version,
                }
                if "id" in rec:
                    answer = {"id": rec["id"], **answer}
                out.append(answer)
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
        }
