"""The nat method: see method.py."""
