"""NAT, Neural Architecture Transfer (Lu et al., 2020; arXiv, then IEEE TPAMI).

A MobileNetV3-style weight-sharing supernet, pretrained once on the source task and cached, is adapted
online to the target while a surrogate-assisted NSGA-II/III search (pymoo) proposes its subnets: each
iteration fits an accuracy surrogate on the archive, searches on predicted error plus exact complexity,
evaluates K subnets for real (BN recalibrated, val error), adapts the supernet on the best subnets'
per-gene distributions and re-evaluates the archive (superseded rows become ``stale``). ``--resume``
continues after the last finished iteration (``checkpoint.py``). The space file (``--space``, default
``nat_small``) gives the supernet ([space]), its pretraining ([pretrain]), the loop ([nat]) and optionally
the budget ([budget]).

Options (``--option KEY=VALUE``; ``natkit search nat --list-options`` prints them):

- ``space`` (str, default 'nat_small'): space NAME or FILE: [space] (nat_mbv3), [pretrain], [nat], [budget]
- ``initial`` (int, default 16, quick 6): initial archive: 2 extremes + random subnets
- ``iterations`` (int, default 8, quick 2): adapt-search iterations
- ``k`` (int, default 6, quick 3): real evaluations per iteration
- ``surrogate`` (str, default 'adaptive', quick 'rbf_ensemble'): accuracy surrogate (a registered family)
- ``search_generations`` (int, default 30, quick 10): NSGA generations on the surrogate
- ``search_pop`` (int, default 40, quick 20): population of the surrogate search
- ``warmup_epochs`` (float, default 2.0, quick 1.5): target adaptation before the initial archive
- ``adapt_epochs`` (float, default 1.0, quick 0.5): adaptation per iteration
- ``adapt_lr`` (float, default 0.05): adaptation learning rate
- ``adapt_samples`` (int, default 2, quick 1): subnets from the per-gene distributions per step
- ``reeval`` (str, default 'all', quick 'front'): re-evaluate all members after adaptation, or the front (all|front)
- ``n_calib`` (int, default 256, quick 128): images for BN recalibration
- ``val_limit`` (int, default 0): cap on validation images (0: all)
- ``finetune_epochs`` (int, default 0): standalone fine-tuning of the final front's subnets
- ``adapt`` (bool, default True): adapt the supernet on the target (ablation: false)
- ``use_surrogate`` (bool, default True): surrogate-assisted proposals (ablation: false = random)
- ``proposals`` (str, default surrogate): how an iteration picks its new subnets: surrogate (NAT), or the
  ablations nsga2 (NSGA-II offspring of the real archive, no surrogate) and random
- ``batch_size`` (int, default 32): batch size of the adaptation
- ``pretrain_samples_per_class`` (int, default 500): source images per class of the supernet pretraining
- ``pretrain_warmup_epochs`` (float, default 1.0): largest subnet alone before the sandwich epochs
- ``pretrain_epochs`` (float, default 2.0): sandwich epochs of the supernet pretraining
- ``pretrain_batch_size`` (int, default 64): batch size of the supernet pretraining
- ``pretrain_lr`` (float, default 0.05): learning rate of the supernet pretraining
- ``pretrain_n_random`` (int, default 2): random subnets per sandwich step
- ``pretrain_distill`` (float, default 0.5): distillation weight from the largest subnet
"""
