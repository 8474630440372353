"""natkit benchmarks, run as modules from the repository root: python -m benchmarks.<method>.<name>."""
