"""Where natkit may write: checked before any work, so a bad output path costs nothing.

Permission bits are honoured even for root (who could write anyway): a file or folder that its owner
marked read-only is not written by natkit.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from natkit.errors import ConfigError


def _not_writable(p: Path) -> str | None:
    """Why ``p`` (an existing file or folder) cannot be written, or None."""
    try:
        mode = p.stat().st_mode
    except OSError as exc:
        return exc.strerror or "cannot be read"
    if not os.access(p, os.W_OK) or not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        return f"is read-only (mode {stat.S_IMODE(mode):o})"
    if p.is_dir() and (not os.access(p, os.X_OK) or not mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)):
        return f"cannot be entered (mode {stat.S_IMODE(mode):o})"
    return None


def _existing_ancestor(p: Path) -> Path:
    p = p.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_output_dir(path, what: str = "output folder") -> Path:
    """A folder natkit will create or write into: it must be a folder (or creatable) and writable."""
    p = Path(path)
    if str(path) == "":
        raise ConfigError(f"{what} must not be empty")
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{what} {p} exists and is not a folder")
    anc = _existing_ancestor(p)
    if not anc.is_dir():
        raise ConfigError(f"{what} {p} cannot be created: {anc} is a file, not a folder")
    why = _not_writable(anc)
    if why:
        raise ConfigError(f"{what} {p} is not writable: {anc} {why}")
    return p


def check_output_file(path, what: str = "output file") -> Path:
    """A file natkit will (over)write: its folder must be writable and the file, if present, too."""
    p = Path(path)
    if p.exists():
        if p.is_dir():
            raise ConfigError(f"{what} {p} is a folder, not a file")
        why = _not_writable(p)
        if why:
            raise ConfigError(f"{what} {p} {why}")
    check_output_dir(p.parent, f"folder of {what} {p}")
    return p


def file_writable(path) -> str | None:
    """Why an existing file or the folder that would hold it is not writable, or None."""
    p = Path(path)
    if p.exists():
        why = _not_writable(p)
        if why:
            return f"{p} {why}"
    anc = _existing_ancestor(p.parent)
    why = _not_writable(anc) if anc.is_dir() else "is a file, not a folder"
    return f"{anc} {why}" if why else None
