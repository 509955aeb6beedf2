"""tests of core/monitoring"""
