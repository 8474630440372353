"""The smallest network Deep LDA pruning can reach, counted before anything is trained.

Why it is a lower bound. LDA never removes a layer and never widens one; it removes output channels
of Torch-Pruning's channel groups (``tracing.channel_groups``), and every group keeps at least:

* an ordinary group: its floor ``max(1, ceil(min_width * width))`` (``Pruner.set_reference``; the floor
  is taken on the unpruned width and holds in every later round, since a group is never cut below it);
* the group feeding the decision layer: the root channels of the M' kept pre-decision neurons, and
  M' >= min(max(classes - 1 (or ``m_floor``), ceil(min_width * D), 1), D) for D pre-decision neurons
  (``Pruner.m_floor``); with r pre-decision neurons per root channel (1 after a dense layer, the
  pooled positions after a conv) that is at least ceil(M' / r) channels.

The unpruned network is the option ``model`` built for the target's classes and channels (a
``weights`` file must load into that same architecture). Cutting every group of it, untrained, to
those floors (Torch-Pruning surgery) gives a network whose parameter and MAC counts (natkit's conv +
linear convention, at ``resolution``) are at most those of any network LDA can produce: both counts
only grow with any layer's width.
"""

from __future__ import annotations

import math
from collections import Counter

import torch

HOW = "counted on that network built untrained"

from natkit.methods.lda import tracing as TR


def floor_widths(model, example, *, min_width: float, m_floor: int, num_classes: int) -> dict:
    """{group root name: (width, smallest width LDA keeps)} for the unpruned ``model``."""
    decision = dict(model.named_modules())[TR.decision_layer(model)]
    d = decision.in_features
    wanted = num_classes - 1 if m_floor < 0 else m_floor
    m_min = min(max(wanted, math.ceil(min_width * d), 1), d)
    out = {}
    for g in TR.channel_groups(model, example):
        if g.predecision is not None:
            per_root = max(Counter(g.predecision[1]).values())
            keep = math.ceil(m_min / per_root)
        else:
            keep = math.ceil(min_width * g.size)
        out[g.root] = (g.size, min(g.size, max(1, keep)))
    return out


def smallest_counts(cfg, num_classes: int, in_channels: int) -> dict | None:
    """``{"params", "macs"}`` of the smallest network LDA can reach (module docstring); None if the
    untrained network could not be cut to its floors (no bound then, rather than a wrong one)."""
    from natkit.measure import measure
    from natkit.nets import create_model
    from natkit.prune.surgery import remove_channels

    with torch.random.fork_rng(devices=[]):  # the run's random stream stays as it was
        model = create_model(cfg.model, num_classes=num_classes, in_channels=in_channels).eval()
    example = torch.zeros(1, in_channels, cfg.resolution, cfg.resolution)
    floors = floor_widths(model, example, min_width=cfg.min_width, m_floor=cfg.m_floor, num_classes=num_classes)
    named = dict(model.named_modules())
    plan = {named[root]: list(range(keep, size)) for root, (size, keep) in floors.items() if keep < size}
    if plan:
        remove_channels(model, plan, example)
    named = dict(model.named_modules())
    widths = {root: getattr(named[root], "out_channels", None) or named[root].out_features for root in floors}
    if any(widths[root] != keep for root, (_, keep) in floors.items()):
        return None
    m = measure(model, cfg.resolution, in_channels)
    return {"params": m["params"], "macs": m["macs"]}


def require_reachable_budget(ctx) -> None:
    """Stop before any training (source pretraining included) when a params/MACs limit is below the
    smallest network LDA can reach."""
    from natkit.core.feasibility import one_thread, require_reachable

    if not any(k in ctx.budget.limits for k in ("params", "macs")):
        return
    cfg = ctx.options
    with one_thread():
        smallest = smallest_counts(cfg, ctx.task.num_classes, ctx.task.in_channels)
    if smallest is not None:
        require_reachable(ctx.budget, smallest, f"lda ({cfg.model} with every layer at its floor, "
                                                f"min_width {cfg.min_width:g}, at {cfg.resolution}px)",
                          how=HOW)
