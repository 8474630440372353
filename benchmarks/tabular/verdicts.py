"""The tabular verdicts (registered ``tabular.*``), judged again on results/tabular/results.json."""

from __future__ import annotations


def update():
    from benchmarks.tabular.claims import rejudge

    return rejudge()
