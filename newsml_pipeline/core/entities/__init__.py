"""The named-entity task: labelling sources over spaCy Docs, their label model, span metrics, gold
readers, near-duplicate-aware splits, fine-tuning and prediction. No Dagster here."""
