"""Pure logic of the pipeline. Nothing here imports Dagster (enforced by core/ruff.toml)."""
