"""The smallest network progressive retraining can reach, counted before anything is trained.

Why it is a lower bound. The process removes kernels (output channels) of the chain's conv layers
and nothing else: no layer is removed, the dense head keeps its widths (only its first layer's
inputs follow the last conv), and a conv layer of width w loses at most
``n_to_eliminate(w, max_level * share_step)`` kernels, the top level of the share space
(``ShareSpace``), and never all of them. With ``relevance=human`` it loses the kernels a decision
file lists, or, asked interactively, any number but the last kernel.

The unpruned network is the option ``model`` built for the target's classes and channels (a
``weights`` file must load into that same architecture). Cutting each of its conv layers, untrained,
to those widths (Torch-Pruning surgery) gives a network whose parameter and MAC counts (natkit's
conv + linear convention, at ``resolution``) are at most those of any network the method produces:
both counts only grow with any layer's width.
"""

from __future__ import annotations

import torch

HOW = "counted on that network built untrained"


def smallest_widths(widths: list[int], s: dict, decisions: dict | None = None) -> list[int]:
    """The narrowest width of each conv layer the run with settings ``s`` can produce."""
    if s["relevance"] == "human":
        if decisions is None:
            return [1] * len(widths)
        return [w - len(decisions.get(pos, ())) for pos, w in enumerate(widths)]
    from natkit.methods.progressive.relevance import n_to_eliminate

    top = round(int(s["max_level"]) * float(s["share_step"]), 6)  # the top level's share, as ShareSpace has it
    return [w - n_to_eliminate(w, top) for w in widths]


def smallest_counts(s: dict, num_classes: int, in_channels: int, decisions: dict | None = None) -> dict | None:
    """``{"params", "macs"}`` of the smallest network of the run (module docstring); None if the
    untrained network could not be cut to those widths (no bound then, rather than a wrong one)."""
    from natkit.measure import measure
    from natkit.methods.progressive.process import check_chain, conv_widths, weight_layers
    from natkit.nets import create_model
    from natkit.prune.surgery import remove_channels

    with torch.random.fork_rng(devices=[]):  # the run's random stream stays as it was
        model = create_model(s["model"], num_classes=num_classes, in_channels=in_channels).eval()
    check_chain(model)
    convs = [l.module for l in weight_layers(model) if l.is_conv]
    target = smallest_widths(conv_widths(model), s, decisions)
    plan = {m: list(range(keep, m.out_channels)) for m, keep in zip(convs, target) if keep < m.out_channels}
    if plan:
        remove_channels(model, plan, torch.zeros(1, in_channels, s["resolution"], s["resolution"]))
    if conv_widths(model) != target:
        return None
    m = measure(model, s["resolution"], in_channels)
    return {"params": m["params"], "macs": m["macs"]}


def require_reachable_budget(ctx, s: dict, decisions: dict | None = None) -> None:
    """Stop before any training (source pretraining included) when a params/MACs limit is below the
    smallest network the run can reach."""
    from natkit.core.feasibility import one_thread, require_reachable

    if not any(k in ctx.budget.limits for k in ("params", "macs")):
        return
    with one_thread():
        smallest = smallest_counts(s, ctx.task.num_classes, ctx.task.in_channels, decisions)
    if smallest is None:
        return
    if s["relevance"] == "human":
        cut = "the decision file's eliminations" if decisions is not None else "one kernel left per conv layer"
    else:
        cut = f"every conv layer at share {min(1.0, s['max_level'] * s['share_step']):g}"
    require_reachable(ctx.budget, smallest, f"progressive ({s['model']}, {cut}, at {s['resolution']}px)",
                      how=HOW)
