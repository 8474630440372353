"""Scaling of candidate evaluations: in-process vs local Dask workers, and a cost model."""
