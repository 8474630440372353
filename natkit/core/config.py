"""TOML files for search spaces and budgets: a NAME is one of the files shipped as package data in
``natkit/search_spaces/`` (found with ``importlib.resources``, so it works from an installed wheel
too), anything else is a path."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from natkit.errors import ConfigError

def _named():
    return resources.files("natkit") / "search_spaces"


def resolve(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists() or "/" in str(name_or_path):
        if not p.is_file():
            raise ConfigError(f"TOML file not found: {p}")
        return p
    cand = _named() / f"{name_or_path}.toml"
    if not cand.is_file():
        known = sorted(f.name[:-5] for f in _named().iterdir() if f.name.endswith(".toml"))
        raise ConfigError(f"unknown search space or budget {name_or_path!r}; known: {', '.join(known)}")
    return Path(str(cand))


TABLES = ("space", "train", "budget", "pretrain", "nat")  # every table a natkit TOML file may hold


def read_toml(name_or_path: str) -> dict:
    path = resolve(name_or_path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"malformed TOML in {path}: {str(exc).splitlines()[0]}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a TOML text file (it holds bytes that are not UTF-8)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read TOML file {path}: {exc.strerror or exc}") from None
    for name in TABLES:  # `budget = 5` parses, but is not the [budget] table a reader expects
        if name in data and not isinstance(data[name], dict):
            raise ConfigError(f"{path}: {name} must be a [{name}] table, got {name} = {data[name]!r}")
    data["_path"] = str(path)
    return data


# Keys a user may add to any table to say what it is; they never change a search.
DESCRIPTIVE_KEYS = frozenset({"name", "description"})


def check_keys(table: dict, allowed: set, where: str) -> None:
    """Unknown keys are errors (a typo must not silently drop a limit); the message names the nearest
    allowed key. ``name`` and ``description`` are accepted everywhere and ignored."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table, got {table!r}")
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
