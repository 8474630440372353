"""Cross-layer "deconv" dependency: trace the kept pre-decision neurons back to every channel.

The paper back-projects the kept pre-decision activations with a Zeiler-Fergus deconvnet:
unpool with the recorded max-pool switches, rectify, and apply the transposed filters (a fully
connected layer is a 1x1 convolution, its transpose is W^T). Every one of those steps is the
backward pass of the corresponding forward op, except the ReLU, which a deconvnet applies to the
backward signal itself instead of gating it with the forward mask. So the tracer is autograd on a
``torch.fx`` copy of the network in which each ReLU is swapped for ``_DeconvReLU`` (forward: relu,
backward: relu of the incoming signal). Eval-mode BatchNorm contributes its per-channel scale,
which is what the same network with BN folded into the convolutions would do; biases drop out.

Where a channel is measured: the signal in the channel's feature space after rectification, i.e.
at the input of the first ReLU that follows the conv/linear through BatchNorm and residual adds.
For channel c of layer i, U_{i,c} is that back-projected map averaged over the images; the
channel's utility is max over positions of |U_{i,c}|.

Joins:
* residual add (ResNet): a tensor used by several consumers receives the *sum* of their
  back-projections (autograd does that at every fork). Channels tied together by the add (all the
  block outputs of one stage and its shortcut convolution) are pruned as one Torch-Pruning group;
  the group's utility of channel c is the sum over its distinct measurement points (one per
  add) of their utilities.
* concatenation (DenseNet): backward through ``torch.cat`` splits the signal per source, so each
  source layer's channels are measured on their own slice ("per source at a concat"); Torch-Pruning
  maps the removed channels to the right input slices of every consumer.

Threshold: for each group, t = eta * std of its non-zero utilities; channels below t are removed,
and so are channels of zero utility (they reach no kept neuron), even at eta = 0.
The group that produces the pre-decision features keeps exactly the LDA-kept neurons instead.
"""

from __future__ import annotations

import copy
import operator
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from natkit.errors import ConfigError
from natkit.prune.surgery import dependency_graph

_PRUNABLE = (nn.Conv2d, nn.Linear)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


class _DeconvReLUFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp_min(0)


def _deconv_relu(x, *args, **kwargs):
    return _DeconvReLUFn.apply(x)


class _TapFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, tap):
        ctx.tap = tap
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        ctx.tap.record(grad)
        return grad, None


class _Tap(nn.Module):
    """Identity in forward; sums the backward signal over images."""

    def __init__(self):
        super().__init__()
        self.total = None
        self.count = 0

    def record(self, grad):
        g = grad.detach().double().sum(0)
        self.total = g if self.total is None else self.total + g
        self.count += grad.shape[0]

    def forward(self, x):
        return _TapFn.apply(x, self)


class _Source(nn.Module):
    """Keeps the pre-decision tensor of the current batch so the back-projection can start there."""

    def __init__(self):
        super().__init__()
        self.value = None

    def forward(self, x):
        self.value = x
        return x


@dataclass(frozen=True)
class TraceResult:
    """Per prunable module (by name): image-averaged back-projected map and channel utility."""

    maps: dict
    utilities: dict
    measured_at: dict
    decision: str
    n_images: int


@dataclass
class ChannelGroup:
    """Output channels of several modules that Torch-Pruning removes together (one root)."""

    root: str
    size: int
    members: list = field(default_factory=list)  # (module name, member idxs, root idxs)
    predecision: list | None = None  # (decision-layer input idxs, root idxs) when it feeds the decision layer


def decision_layer(model: nn.Module) -> str:
    """Name of the classifier's output layer: the last ``nn.Linear`` in module order."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ConfigError("the network has no nn.Linear decision layer to trace back from")
    return names[-1]


@torch.no_grad()
def predecision_activations(model: nn.Module, batches: Iterable, *, decision: str | None = None):
    """(X, y) numpy arrays: the decision layer's input for every image, and the labels."""
    decision = decision or decision_layer(model)
    layer = dict(model.named_modules())[decision]
    feats, labels = [], []
    handle = layer.register_forward_hook(lambda m, inp, out: feats.append(inp[0].detach().flatten(1)))
    was_training = model.training
    model.eval()
    try:
        for x, y in batches:
            model(x)
            labels.append(torch.as_tensor(y).reshape(-1))
    finally:
        handle.remove()
        model.train(was_training)
    if not feats:
        raise ConfigError("no batches to collect pre-decision activations from")
    return torch.cat(feats).double().numpy(), torch.cat(labels).numpy()


def _is_relu(node: fx.Node, modules) -> bool:
    if node.op == "call_module":
        return isinstance(modules.get(node.target), nn.ReLU)
    if node.op == "call_function":
        return node.target in (F.relu, torch.relu, torch.relu_, _deconv_relu)
    return node.op == "call_method" and node.target in ("relu", "relu_")


def _is_passthrough(node: fx.Node, modules) -> bool:
    if node.op == "call_module":
        return isinstance(modules.get(node.target), _BN)
    return node.op == "call_function" and node.target in (operator.add, torch.add, operator.iadd)


def _measure_node(node: fx.Node, modules) -> fx.Node:
    """Follow a conv/linear output through BN and residual adds up to (not into) its ReLU."""
    while len(node.users) == 1:
        (user,) = node.users
        if _is_relu(user, modules) or not _is_passthrough(user, modules):
            break
        node = user
    return node


def _build_tracer(model: nn.Module, decision: str):
    gm = fx.symbolic_trace(copy.deepcopy(model).eval())
    modules = dict(gm.named_modules())
    graph = gm.graph
    dec_nodes = [n for n in graph.nodes if n.op == "call_module" and n.target == decision]
    if len(dec_nodes) != 1:
        raise ConfigError(f"decision layer {decision!r} must be called exactly once to trace the network")
    measure: dict[str, str] = {}
    taps: dict[str, _Tap] = {}
    for node in list(graph.nodes):
        if node.op != "call_module" or node.target == decision:
            continue
        if not isinstance(modules[node.target], _PRUNABLE):
            continue
        m_node = _measure_node(node, modules)
        key = m_node.name
        measure[node.target] = key
        if key in taps:
            continue  # two modules meeting at one add share the measurement point
        taps[key] = _Tap()
        gm.add_submodule(f"_natkit_tap_{key}", taps[key])
        with graph.inserting_after(m_node):
            tap_node = graph.call_module(f"_natkit_tap_{key}", (m_node,))
        m_node.replace_all_uses_with(tap_node, delete_user_cb=lambda u, t=tap_node: u is not t)
    # the source goes right in front of the decision layer, after any tap on the same tensor
    (dec_node,) = dec_nodes
    pre = dec_node.args[0]
    source = _Source()
    gm.add_submodule("_natkit_source", source)
    with graph.inserting_before(dec_node):
        src_node = graph.call_module("_natkit_source", (pre,))
    dec_node.replace_input_with(pre, src_node)
    for node in list(graph.nodes):
        if _is_relu(node, modules) and node.target is not _deconv_relu:
            with graph.inserting_after(node):
                new = graph.call_function(_deconv_relu, (node.args[0],))
            node.replace_all_uses_with(new)
            graph.erase_node(node)
    graph.lint()
    gm.recompile()
    for p in gm.parameters():
        p.requires_grad_(False)
    return gm, source, taps, measure


def trace(model: nn.Module, batches: Iterable, keep: np.ndarray | torch.Tensor, *,
          decision: str | None = None) -> TraceResult:
    """Back-project the kept pre-decision activations (others zeroed) and score every channel."""
    decision = decision or decision_layer(model)
    gm, source, taps, measure = _build_tracer(model, decision)
    keep_t = torch.as_tensor(np.asarray(keep, dtype=bool))
    n = 0
    for x, _ in batches:
        x = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            gm(x)
            h = source.value
            if h.flatten(1).shape[1] != keep_t.numel():
                raise ConfigError(f"keep mask has {keep_t.numel()} entries for {h.flatten(1).shape[1]} "
                                  "pre-decision neurons")
            mask = keep_t.to(h.dtype).reshape(h.shape[1:])
            torch.autograd.backward(h, grad_tensors=h.detach() * mask)
        n += x.shape[0]
    if n == 0:
        raise ConfigError("no batches to trace")
    maps, utilities = {}, {}
    for name, key in measure.items():
        tap = taps[key]
        if tap.total is None:  # not on any path to the decision layer
            out = _out_channels(dict(model.named_modules())[name])
            maps[name] = torch.zeros(out, dtype=torch.float64)
        else:
            maps[name] = tap.total / tap.count
        m = maps[name].abs()
        utilities[name] = m.flatten(1).amax(1) if m.dim() > 1 else m
    return TraceResult(maps=maps, utilities=utilities, measured_at=measure, decision=decision, n_images=n)


def _out_channels(module: nn.Module) -> int:
    return module.out_channels if isinstance(module, nn.Conv2d) else module.out_features


def channel_groups(model: nn.Module, example_input: torch.Tensor, *, decision: str | None = None):
    """Torch-Pruning's coupled output-channel groups, excluding the decision layer."""
    decision = decision or decision_layer(model)
    named = dict(model.named_modules())
    names = {m: n for n, m in named.items()}
    dec = named[decision]
    dg = dependency_graph(model, example_input)
    groups = []
    for group in dg.get_all_groups(ignored_layers=[dec], root_module_types=_PRUNABLE):
        root = group[0].dep.target.module
        g = ChannelGroup(root=names[root], size=_out_channels(root))
        for item in group.items:
            mod, handler = item.dep.target.module, item.dep.handler
            if not isinstance(mod, _PRUNABLE):
                continue
            if dg.is_out_channel_pruning_fn(handler):
                g.members.append((names[mod], list(item.idxs), list(item.root_idxs)))
            elif mod is dec and dg.is_in_channel_pruning_fn(handler):
                g.predecision = (list(item.idxs), list(item.root_idxs))
        groups.append(g)
    return groups


def group_utilities(result: TraceResult, groups) -> list[np.ndarray]:
    """Per group, utility of each root channel: summed over distinct measurement points."""
    out = []
    for g in groups:
        u = np.zeros(g.size)
        seen = set()
        for name, idxs, root_idxs in g.members:
            key = result.measured_at.get(name)
            if key is None or key in seen:
                continue
            seen.add(key)
            np.add.at(u, np.asarray(root_idxs), result.utilities[name].numpy()[np.asarray(idxs)])
        out.append(u)
    return out


def layer_threshold(utility: np.ndarray, eta: float) -> float:
    """t_i = eta * std of the layer's non-zero utilities."""
    nz = np.asarray(utility)[np.asarray(utility) > 0]
    return float(eta * nz.std()) if nz.size else 0.0


def pruning_plan(model: nn.Module, result: TraceResult, groups, keep: np.ndarray, eta, *,
                 min_channels: int | dict = 1) -> dict:
    """{root module: output channels to remove}. ``eta`` is one float or one per group;
    ``min_channels`` one int or {group root name: int} (floors below which a layer is not pruned)."""
    named = dict(model.named_modules())
    keep = np.asarray(keep, dtype=bool)
    etas = np.broadcast_to(np.asarray(eta, dtype=np.float64), (len(groups),))
    plan = {}
    for g, u, e in zip(groups, group_utilities(result, groups), etas):
        if g.predecision is not None:
            in_idxs, root_idxs = g.predecision
            kept_root = np.zeros(g.size, dtype=bool)
            kept_root[np.asarray(root_idxs)[keep[np.asarray(in_idxs)]]] = True
            remove = ~kept_root
        else:
            # zero utility: the channel reaches none of the kept neurons, whatever eta is
            remove = (u < layer_threshold(u, e)) | (u <= 0)
        floor = max(1, min_channels.get(g.root, 1) if isinstance(min_channels, dict) else min_channels)
        if g.predecision is None and remove.sum() > g.size - floor:  # keep the layer's best channels
            order = np.argsort(-u, kind="stable")
            remove[order[:min(floor, g.size)]] = False
        elif remove.all():
            remove[int(np.argmax(u))] = False
        idxs = np.flatnonzero(remove).tolist()
        if idxs:
            plan[named[g.root]] = idxs
    return plan


def describe_plan(model: nn.Module, plan: dict) -> dict:
    names = {m: n for n, m in model.named_modules()}
    return {names[m]: len(idxs) for m, idxs in plan.items()}
