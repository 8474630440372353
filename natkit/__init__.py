"""natkit: compact, task-specific convolutional networks by search and compression."""

__version__ = "0.1.0"


def run_search(method: str, **kw):
    """Run a method on a task into a run folder; see ``natkit.api.run_search``."""
    from natkit.api import run_search as _run

    return _run(method, **kw)
