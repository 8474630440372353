"""Baselines the benchmarks compare the methods against, as library code with tests.

- ``torch_pruning``: Torch-Pruning importances (L1, Taylor, random) at a method's exact per-layer widths,
  with one uniform ratio, or with global ranking; replayed on LDA's schedule.
- ``retrain``: the progressive method's baselines at equal epochs: whole-model retrain after every
  elimination action, one-shot elimination + full retrain, Torch-Pruning L1 + full retrain.
- ``l1``: Torch-Pruning L1 magnitude pruning to a MAC target, matched within a tolerance (TASCNet's
  stage-2 comparison).
"""
