"""The smallest network with which a TASCNet run can meet a budget, counted before anything is trained.

Why it is a lower bound. Stage 1's networks are the head-only transfer (the source network with a new
output layer) and, for every k the run may search (``k``, or 1..``k_max`` under ``auto``), the source
network with its last k meaningful layers rebuilt from the genome: a width from the scaled AutoTune
domain (or the pinned width of a layer tied to the frozen trunk), a kernel size from ``kernels`` (or
the pinned one) and a dropout rate. No gene removes a layer, and parameter and MAC counts only grow
with each width and kernel size, so for each k the genome of lowest levels (narrowest widths,
smallest kernels; widths and kernels are listed in ascending order) is that k's smallest network.
The minimum over the head-only network and those is the smallest stage-1 network.

Stage 2 prunes filters of one stage-1 network, but only of one that met the budget: ``run`` stops
with "no candidate met the budget ... in stage 1" when none did. So a params or MACs limit below the
smallest stage-1 network can never be met, and the check says so before the source pretraining
instead of after stage 1.

The source network is the option ``model`` (its layer shapes taken from the ``weights`` file when one
is given, as ``_source_model`` does), built untrained at the run's resolution and channels; counts
follow natkit's conv + linear convention (``natkit.measure``).
"""

from __future__ import annotations

import torch


def source_shape(ctx, o, load_source) -> tuple[int, int]:
    """(resolution, channels) the run will use; the source images are read only when no file header
    tells their size (``load_source()`` is the run's own, cached, source loading)."""
    from natkit.data.load import image_shape

    shape = image_shape(ctx.source_spec or "fashion-mnist", root=ctx.data_root)
    if shape is None:
        source = load_source()
        shape = (source.in_channels, source.image_size)
    channels, size = shape
    return o.resolution or max(size, 8), channels


def stage1_networks(o, num_classes: int, resolution: int, channels: int) -> list:
    """The head-only network and, per searchable k, the stage-1 network of lowest genome (untrained)."""
    from natkit.methods.tascnet.layers import (KERNEL_DOMAINS, decode_genome, genome_bounds, layer_slots,
                                               meaningful_layers, rebuild)
    from natkit.nets import create_model

    example = torch.zeros(2, channels, resolution, resolution)
    with torch.random.fork_rng(devices=[]):  # the run's random stream stays as it was
        base = create_model(o.model, num_classes=num_classes, in_channels=channels)
        if o.weights:
            from natkit.nets.io import load_state_dict_file, resize_to_state_dict

            resize_to_state_dict(base, load_state_dict_file(o.weights))
        head = rebuild(base, [], example, num_classes)
        n_layers = len(meaningful_layers(head, example)) - 1
        ks = [min(int(o.k), n_layers)] if o.k != "auto" else list(range(1, min(o.k_max, n_layers) + 1))
        nets = [head]
        for k in ks:
            slots = layer_slots(head, example, k, kernels=KERNEL_DOMAINS[o.kernels])
            nets.append(rebuild(head, decode_genome(slots, genome_bounds(slots)[0]), example, num_classes))
    return nets


def smallest_counts(o, num_classes: int, resolution: int, channels: int) -> dict:
    from natkit.measure import measure

    counts = [measure(net, resolution, channels) for net in stage1_networks(o, num_classes, resolution, channels)]
    return {k: min(c[k] for c in counts) for k in ("params", "macs")}


def require_reachable_budget(ctx, load_source) -> None:
    """Stop before any training (source pretraining included) when a params/MACs limit is below the
    smallest stage-1 network (module docstring)."""
    from natkit.core.feasibility import one_thread, require_reachable

    if not any(k in ctx.budget.limits for k in ("params", "macs")):
        return
    o = ctx.options
    resolution, channels = source_shape(ctx, o, load_source)
    with one_thread():
        smallest = smallest_counts(o, ctx.task.num_classes, resolution, channels)
    require_reachable(ctx.budget, smallest,
                      f"tascnet ({o.model}, stage 1 at its narrowest widths and smallest kernels, k {o.k}, "
                      f"at {resolution}px; stage 2 compresses only a stage-1 network within the budget)",
                      how="counted on those networks built untrained")
