"""The ke method: see method.py."""
