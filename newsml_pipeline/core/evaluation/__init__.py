"""core/evaluation"""
