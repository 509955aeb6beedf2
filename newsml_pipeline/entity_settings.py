"""The `entities:` section of the YAML config: the named-entity task (off when the section is absent).

Kept beside settings.py (which only adds the `entities` field) so the entity task's options read as
one page. Same strictness as the rest of the config: unknown keys are errors naming the key, and a
pretrained spaCy label that does not exist (a typo such as `PERSN`) is refused at load time.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_ENTITY_REGISTERED_MODEL = "newsml-entity-recognizer"

# The OntoNotes 5 labels predicted by en_core_web_sm (the pretrained pipeline the sources read).
ONTONOTES_LABELS = (
    "PERSON", "NORP", "FAC", "ORG", "GPE", "LOC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW",
    "LANGUAGE", "DATE", "TIME", "PERCENT", "MONEY", "QUANTITY", "ORDINAL", "CARDINAL",
)  # fmt: skip

_TYPE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EntityType(_Strict):
    """One entity type as the user names it, and the evidence (labelling sources) that feeds it."""

    name: str
    description: str
    # Pretrained spaCy (OntoNotes) labels whose spans become this type: PERSON -> PER, GPE -> LOC ...
    spacy_labels: list[str] = Field(default_factory=list)
    # Phrases that are this type wherever they occur (matched case-sensitively as tokens).
    gazetteer: list[str] = Field(default_factory=list)
    # Text files with one phrase a line (`#` starts a comment); ${NEWSML_HOME} is expanded.
    gazetteer_files: list[str] = Field(default_factory=list)
    # spaCy Matcher token patterns, e.g. [{"LOWER": "prime"}, {"LOWER": "minister"}].
    patterns: list[list[dict[str, Any]]] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _TYPE_NAME.match(v):
            raise ValueError(
                f"entity type name {v!r} must be a letter then letters, digits or _ (e.g. NEWS_ORG)"
            )
        return v

    @field_validator("spacy_labels")
    @classmethod
    def _known_spacy_labels(cls, v: list[str]) -> list[str]:
        unknown = [x for x in v if x not in ONTONOTES_LABELS]
        if unknown:
            raise ValueError(f"unknown pretrained spaCy labels {unknown}; known: {list(ONTONOTES_LABELS)}")
        return v

    @field_validator("patterns")
    @classmethod
    def _non_empty_patterns(cls, v: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
        if any(not p for p in v):
            raise ValueError("a token pattern must hold at least one token dict")
        return v

    @model_validator(mode="after")
    def _has_evidence(self) -> EntityType:
        if not (self.spacy_labels or self.gazetteer or self.gazetteer_files or self.patterns):
            raise ValueError(
                f"entity type {self.name!r} has no evidence: give spacy_labels, gazetteer, "
                "gazetteer_files or patterns"
            )
        return self


class SpanConventions(_Strict):
    """How the user's annotators draw spans; auto-labels are trimmed to match before training."""

    # Leading words dropped from a span ("the United States" -> "United States"), case-insensitive.
    strip_leading: list[str] = Field(default_factory=lambda: ["the", "a", "an"])
    # Trailing possessive tokens dropped ("Obama's" -> "Obama").
    strip_possessive: bool = True
    # Types whose spans start and end with a capitalised word: lowercase edge words are dropped
    # ("east Delhi" -> "Delhi", "Ontario city" -> "Ontario"). Not for types like "finance minister".
    strip_lowercase_edges: list[str] = Field(default_factory=list)
    # A span stops before an opening bracket: "Council of Ontario (RECO" -> "Council of Ontario".
    split_at_brackets: bool = True


class EntityLabelModelConfig(_Strict):
    """How the sources' per-token votes are combined (core/entities/label_model.py)."""

    # majority_vote: each source once, ties abstain. dawid_skene: learned confusions (EM); it let the
    # pretrained NER overrule the rule sources for rare custom types (label_model.py says why).
    method: Literal["majority_vote", "dawid_skene"] = "majority_vote"
    # Below this confidence (vote share / posterior) a token is left unannotated (abstain: no loss
    # there in training); 0.51 under the vote = ties abstain.
    min_confidence: float = Field(default=0.51, ge=0, le=1)
    # Votes per source (pretrained, gazetteer, patterns). Rules are the user's own, more specific
    # statements: at 1.5 against the pretrained 1.0 they win a two-way disagreement, while a
    # gazetteer and a pattern that disagree tie and abstain.
    source_weights: dict[Literal["pretrained", "gazetteer", "patterns"], float] = Field(
        default_factory=lambda: {"pretrained": 1.0, "gazetteer": 1.5, "patterns": 1.5}
    )
    # A sentence with more than this share of abstained tokens is not used for training.
    max_abstain_share: float = Field(default=0.2, ge=0, le=1)


class EntityGateConfig(_Strict):
    """The entity model's deployment rule (strict span F1, micro over the types)."""

    min_gain: float = 0.05  # candidate micro F1 >= pretrained + min_gain (absolute)
    min_type_f1: float = Field(default=0.3, ge=0, le=1)  # every type's F1 at least this
    max_drop_vs_champion: float = Field(default=0.0, ge=0, le=1)
    min_test_sentences: int = Field(default=20, ge=1)


class EntityLoraConfig(_Strict):
    r: int = Field(default=8, ge=1)
    alpha: int = Field(default=16, ge=1)
    dropout: float = Field(default=0.1, ge=0, lt=1)
    target_modules: list[str] | None = None  # null = per architecture (BERT: query, value)


class EntityTrainingConfig(_Strict):
    """Fine-tuning of the recognizer on the auto-labels."""

    # spacy: update the pretrained pipeline's NER; transformer_lora: token classification on
    # `base_model` (a cased model: NER needs capitalisation) with LoRA adapters.
    method: Literal["spacy", "transformer_lora"] = "spacy"
    # rehearsal: the pretrained model's own spans for the labels no user type maps are kept as
    # targets (the model keeps practising them); mixed: only the user's types, from pretrained weights.
    strategy: Literal["rehearsal", "mixed"] = "rehearsal"
    epochs: int = Field(default=3, ge=1, le=100)
    batch_size: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.2, ge=0, lt=1)
    learning_rate: float = Field(default=1e-3, gt=0)
    max_sentences: int = Field(default=20_000, ge=1)  # most auto-labelled sentences trained on
    seed: int = 0
    base_model: str | None = None  # transformer_lora only: path of a cased token-classification base
    max_length: int = Field(default=128, ge=8)
    lora: EntityLoraConfig = EntityLoraConfig()

    @model_validator(mode="after")
    def _lora_needs_base(self) -> EntityTrainingConfig:
        if self.method == "transformer_lora" and not self.base_model:
            raise ValueError(
                "training.method transformer_lora needs training.base_model (a cased model path)"
            )
        return self


class EntitiesConfig(_Strict):
    """The `entities:` section. Its presence turns the entity task on."""

    types: list[EntityType]
    conventions: SpanConventions = SpanConventions()
    label_model: EntityLabelModelConfig = EntityLabelModelConfig()
    gate: EntityGateConfig = EntityGateConfig()
    training: EntityTrainingConfig = EntityTrainingConfig()
    # Trusted sentences (IOB2/CoNLL or JSONL with character spans) for evaluation and the gate only;
    # never trained on. ${NEWSML_HOME} is expanded.
    gold_files: list[str] = Field(default_factory=list)
    # Sentences per day in entity_review_queue (the labelling page's entity mode): most contested first.
    review_per_day: int = Field(default=50, ge=1, le=5000)
    # Characters of each article (title + text) that are sentence-split and labelled.
    max_chars: int = Field(default=2000, ge=50)
    registered_model: str = DEFAULT_ENTITY_REGISTERED_MODEL

    @field_validator("types")
    @classmethod
    def _unique_types(cls, v: list[EntityType]) -> list[EntityType]:
        if not v:
            raise ValueError("at least one entity type is needed")
        names = [t.name for t in v]
        if len(set(names)) != len(names):
            raise ValueError(f"entity type names must be unique, got {names}")
        owner: dict[str, str] = {}
        for t in v:
            for lab in t.spacy_labels:
                if lab in owner:
                    raise ValueError(f"spaCy label {lab} maps to both {owner[lab]} and {t.name}; pick one")
                owner[lab] = t.name
        return v

    @model_validator(mode="after")
    def _convention_types_exist(self) -> EntitiesConfig:
        unknown = [t for t in self.conventions.strip_lowercase_edges if t not in self.names]
        if unknown:
            raise ValueError(
                f"conventions.strip_lowercase_edges names unknown types {unknown}; types: {self.names}"
            )
        return self

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.types]

    @property
    def spacy_map(self) -> dict[str, str]:
        """Pretrained spaCy label -> user type."""
        return {lab: t.name for t in self.types for lab in t.spacy_labels}
