"""core/crawl"""
