"""core/labeling"""
