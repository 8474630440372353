"""Named tasks: ``fashion-mnist``, ``digits``, ``folder:PATH``, ``npz:PATH``, ``table:NAME|PATH``."""

__all__ = ["load_task"]


def __getattr__(name):
    # lazy: a table task (natkit.data.table) needs neither torch nor the image loaders
    if name == "load_task":
        from natkit.data.load import load_task

        return load_task
    raise AttributeError(f"module 'natkit.data' has no attribute {name!r}")
