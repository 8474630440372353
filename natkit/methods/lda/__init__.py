"""The lda method: see method.py."""
