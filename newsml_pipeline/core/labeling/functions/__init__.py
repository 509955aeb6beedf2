"""Labeling functions: batch in, one vote per article out (class index, or ABSTAIN = -1)."""
