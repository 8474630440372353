"""Cost measurement: parameters, MACs (conv + linear), latency."""

from natkit.measure.counts import count_latency_if, count_macs, count_macs_thop, count_params, measure
from natkit.measure.latency import measure_latency_ms

__all__ = ["count_latency_if", "count_macs", "count_macs_thop", "count_params", "measure", "measure_latency_ms"]
