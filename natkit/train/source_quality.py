"""Did the source network learn its source? A documented minimum, checked once per run.

Minimum quality: natkit's own source pretraining must end with a validation error of at most one
third of the source's chance error (``1 - largest class prior`` of the source's val split), i.e. it
must remove two thirds of the error a network that learned nothing has. On Fashion-MNIST (ten
balanced classes, chance error 90%) that is 30% val error. A source below the minimum is not an
error (the user may want it); the run says so in one warning line and records
``stats["source_quality"]`` in run.json.
"""

from __future__ import annotations

SHARE_OF_CHANCE = 1 / 3


def required_max_error(source_task) -> float:
    from natkit.core.chance import chance_level

    return SHARE_OF_CHANCE * chance_level(source_task).chance_error


def check_source(source_task, val_error, *, log=None, stats: dict | None = None, what: str = "source network"):
    """Compare ``val_error`` (the source's validation error) with the minimum; returns the record."""
    if val_error is None:
        return None
    limit = required_max_error(source_task)
    rec = {"source": source_task.spec, "what": what, "val_error": float(val_error),
           "required_max_error": limit, "met": bool(val_error <= limit)}
    if stats is not None:
        stats["source_quality"] = rec
    if not rec["met"] and log is not None:
        log(f"warning: {what} reached only {100 * val_error:.1f}% val error on {source_task.spec} (the minimum is "
            f"{100 * limit:.1f}%): it barely learned its source; pretrain longer (e.g. --option source_epochs=...)")
    return rec
