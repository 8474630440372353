"""The tascnet method: see method.py."""
