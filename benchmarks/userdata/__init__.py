"""A user's own small data through every method: `python -m benchmarks.userdata.run`."""
