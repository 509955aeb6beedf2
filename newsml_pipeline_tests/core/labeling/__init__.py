"""Tests of core/labeling, core/data/splits.py and core/data/quality.py."""
