"""core/serving"""
