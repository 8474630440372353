"""Search engines against published truth on tabular NAS benchmarks (NAS-Bench-Macro):
``python -m benchmarks.tabular.run``; results in ``results/tabular/``."""
