"""The progressive method: see method.py."""
