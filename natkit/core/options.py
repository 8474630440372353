"""Method options: declared once as a typed dataclass, parsed in one place.

A method declares its options as a dataclass deriving from ``Options``; every field is made with
``option(default, doc=..., quick=...)``: its name, its type (the annotation), its default, its value
under ``--quick`` and a one-line doc. ``parse_options`` is the only parser. It builds the object from,
in increasing precedence:

1. the declared defaults;
2. the method's tables of its space TOML (``TOML_TABLES``: table name -> option-name prefix), when the
   method declares a ``space`` option; the TOML's ``[budget]`` table is returned as the run's budget;
   a table the method does not use is an error;
3. the quick values (``--quick``: a quick run is small whatever the space file says);
4. explicit values: ``--option KEY=VALUE`` (strings, converted by the declared type, never guessed), the
   CLI flags that are options (``--space``, ``--model``, ``--weights``, ``--generations``, ``--pop-size``)
   and values passed from Python.

An unknown key is a ``ConfigError`` naming the known keys; a CLI flag a method does not declare is
rejected with the reason.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from typing import ClassVar

from natkit.errors import ConfigError

_NO_QUICK = object()
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def option(default, *, doc: str, quick=_NO_QUICK, choices=None):
    """A declared option: ``default``, the value under ``--quick`` (if it differs), a one-line ``doc``
    and, for strings, the allowed ``choices``."""
    meta = {"doc": doc, "quick": quick, "choices": tuple(choices) if choices else None}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Options:
    """Base of every method's options. A method that runs a pymoo search declares ``generations`` and
    ``pop_size`` (the CLI's ``--generations``/``--pop-size`` set them); ``WHY_NOT`` gives the reason a
    CLI flag the method does not declare is rejected."""

    TOML_TABLES: ClassVar[dict] = {}  # space-TOML table -> prefix of the options it sets
    SPACE_FAMILY: ClassVar[str | None] = None  # the [space] family a method's TOML must name, if any
    WHY_NOT: ClassVar[dict] = {}  # CLI flag -> why this method does not take it

    def check(self) -> None:
        """Cross-field checks of a method (``ConfigError`` on a bad combination); override."""

    def val_images(self) -> int | None:
        """How many validation images (the first ones of the split) a candidate's error is measured on;
        None: all. A method that caps them overrides this, and the run's chance level
        (``natkit.core.chance``) is computed on exactly those images."""
        return None

    def to_dict(self) -> dict:
        """Plain values; integral floats as ints, so keys built from options do not depend on ``2`` vs ``2.0``."""
        return {k: plain_number(v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def known(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def describe(cls) -> list[tuple[str, str, object, object, str]]:
        """(name, type, default, quick value or '-', doc) per option, for ``--list-options``."""
        hints = typing.get_type_hints(cls)
        out = []
        for f in fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            quick = f.metadata.get("quick", _NO_QUICK)
            out.append((f.name, _type_name(hints[f.name]), default, "-" if quick is _NO_QUICK else quick,
                        f.metadata.get("doc", "") + (f" ({'|'.join(f.metadata['choices'])})"
                                                     if f.metadata.get("choices") else "")))
        return out


def plain_number(v):
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, tuple):
        return [plain_number(x) for x in v]
    return v


def parse_options(cls: type[Options], values: dict | None = None, *, method: str, quick: bool = False,
                  toml: dict | None = None) -> Options:
    """The one parser: defaults, quick values, TOML tables (``toml``: the parsed space file), then
    ``values`` (strings are converted by the declared type)."""
    values = dict(values or {})
    known = cls.known()
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown {method} option {unknown[0]!r}; known: {', '.join(known)}")
    hints = typing.get_type_hints(cls)
    chosen: dict = {}
    if toml is not None:
        chosen.update(_from_toml(cls, toml, method))
    if quick:
        for f in fields(cls):
            if f.metadata.get("quick", _NO_QUICK) is not _NO_QUICK:
                chosen[f.name] = f.metadata["quick"]
    chosen.update(values)
    by_name = {f.name: f for f in fields(cls)}
    typed = {k: _convert(k, v, hints[k], by_name[k].metadata.get("choices"), method) for k, v in chosen.items()}
    obj = cls(**typed)
    obj.check()
    return obj


def resolve_options(cls: type[Options], values: dict | None = None, *, method: str, quick: bool = False):
    """``parse_options`` plus the method's space TOML (when it declares a ``space`` option): returns the
    options and the TOML's ``[budget]`` table (or None)."""
    from natkit.core.config import read_toml

    values = dict(values or {})
    toml = None
    if "space" in cls.known():
        default = next(f.default for f in fields(cls) if f.name == "space")
        name = values.get("space") or default
        if name:
            toml = read_toml(str(name))
    return parse_options(cls, values, method=method, quick=quick, toml=toml), toml_budget(toml)


def toml_budget(toml: dict | None) -> dict | None:
    """The ``[budget]`` table of a space TOML, if it has one."""
    return dict(toml["budget"]) if toml and "budget" in toml else None


def _from_toml(cls, data: dict, method: str) -> dict:
    from natkit.core.config import DESCRIPTIVE_KEYS, suggest

    where = data.get("_path", "the space file")
    family = data.get("space", {}).get("family", cls.SPACE_FAMILY) if isinstance(data.get("space"), dict) else None
    if cls.SPACE_FAMILY and family != cls.SPACE_FAMILY:
        raise ConfigError(f"{where} is a {family!r} space, not {cls.SPACE_FAMILY}")
    out = {}
    for table, content in data.items():
        if table in DESCRIPTIVE_KEYS:  # a file's own name or description
            continue
        if table in ("_path", "budget", "space"):
            if table == "space" and "space" in cls.TOML_TABLES:
                pass  # the method's options live in [space] (lda)
            else:
                continue
        if table not in cls.TOML_TABLES:
            used = ", ".join(f"[{t}]" for t in dict.fromkeys(["space", "budget", *cls.TOML_TABLES]))
            raise ConfigError(f"table [{table}] in {where} is not used by {method}; it reads {used}")
        if not isinstance(content, dict):
            raise ConfigError(f"[{table}] in {where} must be a table")
        prefix = cls.TOML_TABLES[table]
        for key, value in content.items():
            if (table == "space" and key == "family") or key in DESCRIPTIVE_KEYS:
                continue
            name = prefix + key
            if name not in cls.known():
                allowed = sorted(n[len(prefix):] for n in cls.known() if n.startswith(prefix))
                raise ConfigError(f"unknown key {key!r} in [{table}] of {where}{suggest(key, allowed)}; "
                                  f"allowed: {', '.join(allowed)} (and name, description)")
            out[name] = value
    return out


def _convert(name, value, tp, choices, method):
    try:
        out = _typed(value, tp)
    except (TypeError, ValueError):
        raise ConfigError(f"{method} option {name}={value!r} is not a valid {_type_name(tp)}") from None
    if choices and out is not None and out not in choices:
        raise ConfigError(f"{method} option {name}={out!r}: choose from {', '.join(map(str, choices))}")
    return out


def _typed(value, tp):
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", "")):
            return None
        return _typed(value, inner[0])
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError(value)
    if tp is int:
        if isinstance(value, bool):
            raise TypeError(value)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            f = float(value.strip())
            if not f.is_integer():
                raise ValueError(value)
            return int(f)
        raise TypeError(value)
    if tp is float:
        if isinstance(value, bool):
            raise TypeError(value)
        return float(value.strip() if isinstance(value, str) else value)
    if tp is str:
        if isinstance(value, (dict, list, bool)):
            raise TypeError(value)
        return str(value).strip()
    if typing.get_origin(tp) is tuple or tp is tuple:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        elem = args[0] if args else str
        return tuple(_typed(v, elem) for v in value)
    return value


def _type_name(tp) -> str:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) is tuple:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    return getattr(tp, "__name__", str(tp)).replace("NoneType", "none")


def format_options(cls: type[Options], method: str) -> str:
    """The table ``natkit search METHOD --list-options`` prints."""
    rows = [("option", "type", "default", "quick", "")] + [
        (n, t, _show(d), _show(q), doc) for n, t, d, q, doc in cls.describe()]
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [f"options of {method} (set with --option KEY=VALUE):"]
    lines += ["  ".join(r[i].ljust(w[i]) for i in range(4)) + "  " + r[4] for r in rows]
    return "\n".join(lines)


def _show(v) -> str:
    if isinstance(v, tuple):
        return ",".join(map(str, v))
    return str(v)
