"""The width method: see method.py."""
