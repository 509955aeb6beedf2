"""core/monitoring"""
