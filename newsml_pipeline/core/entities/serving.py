"""Entities for callers: `newsml entities` (JSONL in, JSONL out) and `POST /entities` in
`newsml serve`. Both load `models:/<entities.registered_model>@champion`; before any deployment
they answer with the pretrained pipeline mapped to the types (model_version `pretrained`), so a
caller always learns which model spoke.

One answer per input: {"id", "entities": [{"start", "end", "label", "text"}], "model_version"},
offsets are characters of the input `text` (text[start:end] == entity text)."""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from newsml_pipeline.core.entities.model import EntityRecognizer, load_recognizer
from newsml_pipeline.core.entities.registry import champion, download_version, spans_json
from newsml_pipeline.entity_settings import EntitiesConfig

log = logging.getLogger(__name__)


class InvalidEntityRecord(ValueError):
    """An input without a string `text`; `index` is its position in the request."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"record {index + 1}: {reason}")
        self.index = index


def check_records(records: list[Any]) -> list[dict[str, Any]]:
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            raise InvalidEntityRecord(i, f"expected an object with 'text', got {type(r).__name__}")
        if not isinstance(r.get("text"), str):
            raise InvalidEntityRecord(i, "'text' must be a string")
    return records


@dataclass
class EntityService:
    recognizer: Any  # EntityRecognizer or TransformerRecognizer: both predict char spans
    model_version: str

    @classmethod
    def from_config(cls, cfg: EntitiesConfig, *, tracking_uri: str, cache_dir) -> EntityService:  # noqa: ANN001
        version = champion(tracking_uri, cfg.registered_model)
        if version is None:
            log.info("no %s champion yet: answering with the pretrained pipeline", cfg.registered_model)
            return cls(EntityRecognizer.stock(cfg, conventions=True), "pretrained")
        path = download_version(tracking_uri, cfg.registered_model, version, cache_dir)
        return cls(load_recognizer(path), version)

    def annotate(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        records = check_records(records)
        texts = [r["text"] for r in records]
        spans = self.recognizer.predict(texts)
        return [
            {"id": r.get("id"), "entities": spans_json(t, s), "model_version": self.model_version}
            for r, t, s in zip(records, texts, spans, strict=True)
        ]


def add_entities_route(app: Any, service: EntityService, *, token: str | None, max_body_bytes: int) -> None:
    """Register POST /entities on the FastAPI app of `newsml serve`: one object or a list of them
    ({"id"?, "text"}) -> one answer or {"results": [...]}; same bearer token as /classify.
    (FastAPI resolves the handler's `Request` annotation from this module's globals.)"""

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.post("/entities")
    async def entities(request: Request) -> JSONResponse:
        """Named entities of one text or a list of texts, with character offsets."""
        if token:
            scheme, _, value = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip(), token):
                return JSONResponse(
                    {"error": "missing or wrong bearer token"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        body = await request.body()
        if len(body) > max_body_bytes:
            return error(413, f"body larger than serving.max_body_bytes={max_body_bytes}")
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            return error(400, f"body is not valid UTF-8 JSON: {e}")
        single = isinstance(payload, dict)
        try:
            results = await run_in_threadpool(service.annotate, [payload] if single else list(payload))
        except (InvalidEntityRecord, TypeError) as e:
            return error(422, str(e))
        return JSONResponse(results[0] if single else {"results": results})
