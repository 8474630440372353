"""Filter redundancy from weight trajectories (TASCNet stage 2).

A filter's trajectory is its weights snapshotted after every fine-tuning epoch. Two filters whose
trajectories point the same way at every epoch compute nearly proportional responses, so one of
them is redundant. This module records trajectories of prunable conv channel groups, scores every
pair by cosine similarity (averaged over epochs), and picks the MOST similar disjoint pairs; of each
pair the filter with the smaller L1 norm summed over epochs is the one to remove.

Channel groups come from Torch-Pruning's dependency graph, so convs whose outputs are tied by a
residual add are one group: channel ``i`` of the group is the concatenation of channel ``i`` of
every member conv, and removing it removes it everywhere (``natkit.prune.surgery``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from natkit.prune.surgery import dependency_graph


@dataclass
class ChannelGroup:
    """Convs whose output channels must be removed together; ``root`` is what surgery is given."""

    root: nn.Module
    name: str
    members: list[nn.Module]

    @property
    def n_channels(self) -> int:
        return int(self.root.weight.shape[0])

    def flat_weights(self) -> torch.Tensor:
        """(channels, features): every member's filter ``i`` flattened and concatenated."""
        parts = [m.weight.detach().reshape(m.weight.shape[0], -1) for m in self.members]
        return torch.cat(parts, dim=1).float().cpu().clone()


def conv_channel_groups(model: nn.Module, example_input: torch.Tensor, *, min_channels: int = 0,
                        ignored: list[nn.Module] | None = None) -> list[ChannelGroup]:
    """Prunable channel groups whose producers are all convs with more than ``min_channels`` outputs.

    Groups that also contain a linear producer (or the ignored layers) are skipped: stage 2 removes
    filters, not dense units. Grouped (e.g. depthwise) convs are skipped too.
    """
    import torch_pruning as tp

    dg = dependency_graph(model, example_input)
    names = {m: n for n, m in model.named_modules()}
    ignored = list(ignored or [])
    groups, seen = [], set()
    for module in _modules_in_order(model):
        if not isinstance(module, nn.Conv2d) or module in seen or module in ignored:
            continue
        group = dg.get_pruning_group(module, tp.prune_conv_out_channels, idxs=[0])
        producers = []
        for dep, _ in group:
            target = dep.target.module
            if dg.is_out_channel_pruning_fn(dep.handler) and isinstance(target, (nn.Conv2d, nn.Linear)):
                if target not in producers:
                    producers.append(target)
        seen.update(producers)
        if any(isinstance(p, nn.Linear) or p in ignored for p in producers):
            continue
        if any(p.groups != 1 for p in producers):
            continue
        if module.weight.shape[0] <= min_channels:
            continue
        groups.append(ChannelGroup(root=module, name=names.get(module, "?"), members=producers))
    return groups


def _modules_in_order(model):
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@dataclass
class TrajectoryRecorder:
    """Snapshots of each group's flattened filters, one per ``record()`` (call once per epoch)."""

    groups: list[ChannelGroup]
    snapshots: list[list[torch.Tensor]] = field(default_factory=list)

    def __post_init__(self):
        if not self.snapshots:
            self.snapshots = [[] for _ in self.groups]

    def record(self) -> None:
        for g, snaps in zip(self.groups, self.snapshots):
            w = g.flat_weights()
            if snaps and snaps[0].shape != w.shape:
                raise ValueError(f"group {g.name} changed shape while recording; start a new recorder")
            snaps.append(w)

    @property
    def n_epochs(self) -> int:
        return min((len(s) for s in self.snapshots), default=0)

    def trajectory(self, index: int) -> torch.Tensor:
        """(epochs, channels, features) for group ``index``."""
        if not self.snapshots[index]:
            raise ValueError("no snapshot recorded yet")
        return torch.stack(self.snapshots[index])


def trajectory_similarity(traj: torch.Tensor) -> torch.Tensor:
    """(channels, channels) cosine similarity of filters, averaged over the recorded epochs.

    ``traj`` is (epochs, channels, features). The diagonal is set to -inf so a filter is never
    paired with itself.
    """
    if traj.dim() != 3:
        raise ValueError(f"trajectory must be (epochs, channels, features), got {tuple(traj.shape)}")
    unit = torch.nn.functional.normalize(traj.double(), dim=2, eps=1e-12)
    sim = torch.einsum("ecf,edf->cd", unit, unit) / traj.shape[0]
    sim.fill_diagonal_(float("-inf"))
    return sim


def l1_over_epochs(traj: torch.Tensor) -> torch.Tensor:
    """(channels,) L1 norm of each filter, summed over the recorded epochs."""
    return traj.abs().sum(dim=(0, 2))


def most_similar_pairs(sim: torch.Tensor, n_pairs: int) -> list[tuple[int, int]]:
    """Up to ``n_pairs`` disjoint pairs (i != j), greedily from the highest similarity down.

    Disjoint so that removing one filter per pair never removes both ends of a chain of similar
    filters.
    """
    c = sim.shape[0]
    if sim.shape != (c, c):
        raise ValueError("similarity must be square")
    n_pairs = max(0, min(int(n_pairs), c // 2))
    if n_pairs == 0:
        return []
    iu, ju = torch.triu_indices(c, c, offset=1)
    scores = sim[iu, ju]
    # stable sort: ties resolve to the lowest index pair, so selection is deterministic
    order = torch.argsort(-scores, stable=True)
    used, pairs = set(), []
    for k in order.tolist():
        i, j = int(iu[k]), int(ju[k])
        if i in used or j in used:
            continue
        pairs.append((i, j))
        used.update((i, j))
        if len(pairs) == n_pairs:
            break
    return pairs


def filters_to_remove(pairs: list[tuple[int, int]], l1: torch.Tensor) -> list[int]:
    """Of each pair, the filter with the smaller summed L1 norm (the first on a tie)."""
    return sorted(j if l1[j] <= l1[i] else i for i, j in pairs)


def kept_partner(pairs: list[tuple[int, int]], l1: torch.Tensor) -> dict[int, int]:
    """removed filter -> the filter of its pair that stays."""
    out = {}
    for i, j in pairs:
        rem = j if l1[j] <= l1[i] else i
        out[rem] = i if rem == j else j
    return out


def merge_into_kept(group: ChannelGroup, pairs: list[tuple[int, int]], l1: torch.Tensor) -> None:
    """Optional merge: each kept filter becomes the L1-weighted mean of its pair (all members).

    The two filters point the same way, so the mean keeps that direction while keeping some of the
    removed filter's contribution to the scale.
    """
    with torch.no_grad():
        for rem, keep in kept_partner(pairs, l1).items():
            a, b = float(l1[keep]), float(l1[rem])
            wa = a / (a + b) if a + b > 0 else 0.5
            for m in group.members:
                m.weight[keep] = wa * m.weight[keep] + (1 - wa) * m.weight[rem]
                if m.bias is not None:
                    m.bias[keep] = wa * m.bias[keep] + (1 - wa) * m.bias[rem]


def pull_together_loss(groups: list[ChannelGroup], pairs: list[list[tuple[int, int]]],
                       weight: float) -> torch.Tensor:
    """``weight * exp(-sum of cos(w_i, w_j))`` over all selected pairs, on the live weights.

    Added to cross-entropy it pulls each selected pair's filters together before one is removed,
    so that removing it costs less. Differentiable in the members' weights.
    """
    total = None
    for g, ps in zip(groups, pairs):
        if not ps:
            continue
        w = torch.cat([m.weight.reshape(m.weight.shape[0], -1) for m in g.members], dim=1)
        i = torch.tensor([p[0] for p in ps], device=w.device)
        j = torch.tensor([p[1] for p in ps], device=w.device)
        cos = torch.nn.functional.cosine_similarity(w[i], w[j], dim=1).sum()
        total = cos if total is None else total + cos
    if total is None:
        return torch.zeros(())
    return weight * torch.exp(-total)
