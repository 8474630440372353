"""The random method: see method.py."""
