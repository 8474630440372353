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


def check_keys(table: dict, allowed: set, where: str) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table, got {table!r}")
    unknown = sorted(set(table) - set(allowed) - {"_path"})
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in {where}; allowed: {', '.join(sorted(allowed))}")
