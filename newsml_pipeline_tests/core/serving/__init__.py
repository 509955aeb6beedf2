"""tests: core/serving"""
