"""TOML files for search spaces and budgets: found by name in ``search_spaces/`` or by path."""

from __future__ import annotations

import tomllib
from pathlib import Path

from natkit.errors import ConfigError

SPACES_DIR = Path(__file__).resolve().parents[2] / "search_spaces"


def resolve(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists() or "/" in str(name_or_path):
        if not p.is_file():
            raise ConfigError(f"TOML file not found: {p}")
        return p
    cand = SPACES_DIR / f"{name_or_path}.toml"
    if not cand.is_file():
        known = sorted(f.stem for f in SPACES_DIR.glob("*.toml"))
        raise ConfigError(f"unknown search space or budget {name_or_path!r}; known: {', '.join(known)}")
    return cand


def read_toml(name_or_path: str) -> dict:
    path = resolve(name_or_path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"malformed TOML in {path}: {exc}") from None
    data["_path"] = str(path)
    return data


# Keys a user may add to any table to say what it is; they never change a search.
DESCRIPTIVE_KEYS = frozenset({"name", "description"})


def check_keys(table: dict, allowed: set, where: str) -> None:
    """Unknown keys are errors (a typo must not silently drop a limit); the message names the nearest
    allowed key. ``name`` and ``description`` are accepted everywhere and ignored."""
    unknown = sorted(set(table) - set(allowed) - DESCRIPTIVE_KEYS - {"_path"})
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in {where}{suggest(unknown[0], allowed)}; "
                          f"allowed: {', '.join(sorted(allowed))} (and name, description)")


def strip_descriptive(table: dict) -> dict:
    """``table`` without the descriptive keys (and the loader's ``_path``)."""
    return {k: v for k, v in table.items() if k not in DESCRIPTIVE_KEYS and k != "_path"}


def suggest(key: str, allowed) -> str:
    """' (did you mean 'macs'?)' for the closest allowed key by difflib's ratio, or ''."""
    import difflib

    close = difflib.get_close_matches(str(key), sorted(map(str, allowed)), n=1, cutoff=0.6)
    if not close:  # case or separator slips ("MACs", "latency-ms") are typos too
        norm = {str(a).lower().replace("-", "_"): a for a in allowed}
        hit = norm.get(str(key).lower().replace("-", "_"))
        close = [hit] if hit else []
    return f" (did you mean {close[0]!r}?)" if close else ""
