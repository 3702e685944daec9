"""Golden-output fixtures: reference logits of each reference implementation, and the numpy-only generator of
the reference-layout weights they were computed with (shared by scripts/make_golden.py and tests/test_golden.py).
"""
