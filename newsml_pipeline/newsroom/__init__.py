"""A simulated newsroom (loopback feeds that roll, article pages) to run the living system against."""

from newsml_pipeline.newsroom.site import NewsSite, Story

__all__ = ["NewsSite", "Story"]
