"""Named tasks: ``fashion-mnist``, ``digits``, ``folder:PATH``, ``npz:PATH``."""

from natkit.data.load import load_task

__all__ = ["load_task"]
