"""The label schema: the only thing the pipeline knows about topics, taken from `labels.categories`.

Labeling functions work on integer class indices (ABSTAIN = -1) so votes form a numpy matrix;
this module maps between those indices and the configured category names.
"""

from __future__ import annotations

from dataclasses import dataclass

from newsml_pipeline.settings import LabelsConfig

ABSTAIN = -1


@dataclass(frozen=True)
class LabelSchema:
    """Category names, descriptions and keywords in config order (index i = class i)."""

    names: tuple[str, ...]
    descriptions: tuple[str, ...]
    keywords: tuple[tuple[str, ...], ...]

    @classmethod
    def from_config(cls, labels_cfg: LabelsConfig) -> LabelSchema:
        cats = labels_cfg.categories
        return cls(
            names=tuple(c.name for c in cats),
            descriptions=tuple(c.description for c in cats),
            keywords=tuple(tuple(c.keywords) for c in cats),
        )

    @property
    def k(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """Class index of `name`; a ValueError lists the valid names."""
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(f"unknown label {name!r}; the schema has {list(self.names)}") from None

    def name_of(self, idx: int) -> str | None:
        """Category name of a class index, None for ABSTAIN."""
        return None if idx == ABSTAIN else self.names[idx]
