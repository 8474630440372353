"""NAT's verdicts, derived from the stored results/nat/*.json under the registered rules."""

from __future__ import annotations


def update() -> None:
    pass
