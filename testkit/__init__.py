"""Helpers the tests and the benchmarks share, in one home outside the installed package.

`corpora` (where ../shared/corpora is and how its files read), `loopback` (an HTTP server over
the real pages and feeds), `postgres_server` (a throwaway Postgres) and `tiny_models` (a small
random classifier for fast trainings). Both sides import them the same way, `from testkit.x
import …`, with the repository root on sys.path: pytest puts it there (`pythonpath` in
pyproject.toml) and every `bench/*.py` inserts it before its imports. Nothing here is installed
with `newsml_pipeline`, and nothing here imports the tests or the benchmarks.
"""
