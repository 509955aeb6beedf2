"""tests: core/evaluation"""
