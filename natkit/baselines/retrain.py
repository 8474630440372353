"""The progressive method's baselines, each at the progressive run's epochs and final widths.

``rt`` is the progressive method's retraining settings (``natkit.methods.progressive.method``), whose
``cfg.epochs`` is E, the epochs per layer; a network with n prunable convs gets n * E epochs in every
variant. ``score_batches`` are the images the relevance criterion reads.

- :func:`whole_model_retrain_per_action` (a): same criterion and layer order as progressive, but each
  layer's kernels go in ``actions`` actions, each followed by retraining the *entire* model for
  E / actions epochs.
- :func:`one_shot_retrain` (b): score every layer on the trained model, eliminate all at once, retrain
  the entire model n * E epochs.
- :func:`l1_retrain` (c): Torch-Pruning L1 magnitude pruning with the same per-layer share (hidden dense
  layers kept, as in the others), entire model retrained n * E epochs.
"""

from __future__ import annotations

import copy

import torch.nn as nn

from natkit.methods.progressive import process as P
from natkit.methods.progressive.relevance import lowest_ranked, n_to_eliminate, score_kernels
from natkit.prune.surgery import magnitude_prune
from natkit.train import TrainConfig, train
from natkit.utils.seed import derive_seed


def whole_model_retrain_per_action(base, task, share, criterion, rt, score_batches, seed, *, resolution: int,
                                   channels: int, actions: int = 2):
    model = copy.deepcopy(base)
    example = P.example_input(channels, resolution)
    cfg = TrainConfig(**{**rt.cfg.to_dict(), "epochs": rt.cfg.epochs / actions})
    convs = [layer.name for layer in P.weight_layers(model) if layer.is_conv]
    for pos, name in enumerate(convs):
        conv = dict(model.named_modules())[name]
        total = n_to_eliminate(conv.out_channels, share)
        chunks = [total // actions + (1 if i < total % actions else 0) for i in range(actions)]
        for a, n in enumerate(chunks):
            if not n:
                continue
            conv = dict(model.named_modules())[name]
            scores = score_kernels(model, conv, score_batches, criterion)
            P.eliminate(model, conv, lowest_ranked(scores, n), example)
            train(model, task, cfg, resolution=resolution, channels=channels, seed=derive_seed(seed, "a", pos, a))
    return model


def one_shot_retrain(base, task, share, criterion, rt, score_batches, seed, *, resolution: int, channels: int):
    model = copy.deepcopy(base)
    example = P.example_input(channels, resolution)
    plan = {}
    for layer in [layer for layer in P.weight_layers(model) if layer.is_conv]:
        scores = score_kernels(model, layer.module, score_batches, criterion)
        plan[layer.name] = lowest_ranked(scores, n_to_eliminate(layer.module.out_channels, share))
    for name, kernels in plan.items():  # one surgery per layer; indices stay valid (outputs of that layer)
        P.eliminate(model, dict(model.named_modules())[name], kernels, example)
    cfg = TrainConfig(**{**rt.cfg.to_dict(), "epochs": rt.cfg.epochs * len(plan)})
    train(model, task, cfg, resolution=resolution, channels=channels, seed=derive_seed(seed, "b"))
    return model


def l1_retrain(base, task, share, criterion, rt, score_batches, seed, *, resolution: int, channels: int):
    model = copy.deepcopy(base)
    hidden = [m for m in model.classifier if isinstance(m, nn.Linear)][:-1]
    magnitude_prune(model, P.example_input(channels, resolution), ratio=share, ignored_layers=hidden, importance="l1")
    cfg = TrainConfig(**{**rt.cfg.to_dict(), "epochs": rt.cfg.epochs * len(P.conv_widths(base))})
    train(model, task, cfg, resolution=resolution, channels=channels, seed=derive_seed(seed, "c"))
    return model
