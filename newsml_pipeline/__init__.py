"""newsml_pipeline: keeps a news-topic classifier fresh without hand labelling."""

__version__ = "0.1.0"
