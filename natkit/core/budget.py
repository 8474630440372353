"""Hardware budgets as pymoo constraints: G = value / limit - 1 <= 0 is feasible."""

from __future__ import annotations

from dataclasses import dataclass, field

from natkit.core.config import check_keys, read_toml, strip_descriptive
from natkit.errors import ConfigError

BUDGET_KEYS = {"error", "params", "macs", "latency_ms"}


@dataclass(frozen=True)
class Budget:
    limits: dict = field(default_factory=dict)

    def __post_init__(self):
        check_keys(self.limits, BUDGET_KEYS, "[budget]")
        object.__setattr__(self, "limits", strip_descriptive(self.limits))
        for k, v in self.limits.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ConfigError(f"budget limit {k} must be a positive number, got {v!r}")

    @property
    def n_constr(self) -> int:
        return len(self.limits)

    def g(self, metrics: dict) -> list[float]:
        """Normalised constraint values; a missing metric counts as violated."""
        return [(float(metrics[k]) / v - 1.0) if metrics.get(k) is not None else 1.0
                for k, v in sorted(self.limits.items())]

    def feasible(self, metrics: dict) -> bool:
        return all(x <= 0 for x in self.g(metrics))

    def describe(self) -> str:
        return ", ".join(f"{k} <= {v:g}" for k, v in sorted(self.limits.items())) or "none"


def load_budget(name_or_path: str | None) -> Budget:
    if not name_or_path:
        return Budget({})
    data = read_toml(name_or_path)
    if "budget" not in data and "hardware" not in data:
        raise ConfigError(f"{data['_path']} has no [budget] table (nor a [hardware] table)")
    if not isinstance(data.get("budget", {}), dict):
        raise ConfigError(f"budget in {data['_path']} must be a table ([budget]), got {data['budget']!r}")
    table = dict(data.get("budget", {}))
    check_keys(table, BUDGET_KEYS, f"[budget] of {data['_path']}")
    return Budget(table)


def load_hardware(name_or_path: str | None):
    """The ``[hardware]`` table of a budget TOML (how ``latency_ms`` is measured or predicted), or the
    default protocol; a relative ``table`` path is taken relative to the TOML file first."""
    from pathlib import Path

    from natkit.measure.latency import HardwareSetting

    if not name_or_path:
        return HardwareSetting()
    data = read_toml(name_or_path)
    return HardwareSetting.from_table(dict(data.get("hardware", {})), base_dir=Path(data["_path"]).parent)
