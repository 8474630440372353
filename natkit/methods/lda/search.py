"""Deep LDA pruning as a multi-objective problem: the genes, and how one candidate is evaluated.

Genes: eta (one shared index, or one per layer group) and the kept share M' of the *unpruned*
pre-decision width (never below the schedule's floor: classes - 1 and ``min_width``).

Evaluation modes (``LDAConfig.search_mode``):

* ``progressive`` (default): the candidate is the paper's procedure stopped at its own eta. Round r
  prunes with eta_r = min(eta, eta_start + r * eta_step) per group (recomputing the Fisher utility,
  M' and the tracing on the current network) and fine-tunes ``finetune_epochs``; the rounds end
  when every group has reached its eta. Rounds that remove nothing cost no training. Networks after
  each round are cached by (share, the eta sequence so far), so candidates sharing a prefix of the
  schedule reuse it: the fine-tuning seed of round r depends only on the run seed and r, as in
  ``schedule``.
* ``oneshot``: the unpruned network is pruned once with eta and M' and fine-tuned once. Cheaper,
  but at high eta it removes most channels in one step from utilities of the unpruned network and
  gets a small fraction of the schedule's fine-tuning: measured on digits it is far behind the
  schedule at >= 90 % removed (results/lda/search.md).
"""

from __future__ import annotations

import numpy as np

from natkit.core.evaluator import Evaluator
from natkit.core.space import SearchSpace
from natkit.errors import ConfigError
from natkit.methods.lda import utility as LU

SEARCH_MODES = ("progressive", "oneshot")


class LDASpace(SearchSpace):
    """Genes: eta index (one shared, or one per layer group), then the kept-share index."""

    def __init__(self, n_groups: int, cfg):
        self.n_eta = n_groups if cfg.per_layer_eta else 1
        self.eta_step, self.shares = cfg.eta_step, list(cfg.shares)
        self.xl = np.zeros(self.n_eta + 1, dtype=int)
        self.xu = np.array([cfg.eta_levels] * self.n_eta + [len(self.shares) - 1], dtype=int)

    def decode(self, x) -> dict:
        x = self.repair(x)
        etas = [round(i * self.eta_step, 6) for i in x[:-1]]
        return {"eta": etas if self.n_eta > 1 else etas[0], "kept_share": self.shares[x[-1]]}

    def describe(self) -> dict:
        return {**super().describe(), "eta_step": self.eta_step, "shares": self.shares}


def eta_rounds(eta, n_groups: int, eta_start: float, eta_step: float, *, max_rounds: int = 1000) -> list:
    """The per-group eta of each round: min(eta, eta_start + r * eta_step), until all reach eta."""
    target = np.broadcast_to(np.asarray(eta, dtype=np.float64), (n_groups,)).copy()
    out = []
    for r in range(max_rounds):
        vec = np.minimum(target, eta_start + r * eta_step)
        out.append(tuple(round(float(v), 6) for v in vec))
        if np.all(vec >= target - 1e-12):
            return out
    raise ConfigError("eta too large for the schedule's rounds")


class LDAEvaluator(Evaluator):
    """Prune the unpruned reference with the decoded eta and M' (``mode``), fine-tune, measure."""

    def __init__(self, base, pruner, space: LDASpace, *, seed=0, robust=False, latency=False,
                 mode: str = "progressive"):
        if mode not in SEARCH_MODES:
            raise ConfigError(f"search_mode={mode!r}: use one of {', '.join(SEARCH_MODES)}")
        self.base, self.pruner, self.space, self.mode = base, pruner, space, mode
        self.seed, self.robust, self.latency = seed, robust, latency
        self.u, _, _ = pruner.utility(base)
        if not pruner.floors:
            pruner.set_reference(base)
        from natkit.measure import count_params

        self.p0 = count_params(base)
        self.n_groups = pruner.n_groups(base)
        self._cache: dict = {}

    def settings(self) -> dict:
        cfg = self.pruner.cfg.to_dict()
        keys = ("model", "resolution", "source_epochs", "source_samples_per_class", "transfer_epochs",
                "finetune_epochs", "lr", "batch_size", "max_batches", "utility", "trace_images", "sigma", "epsilon",
                "min_width", "m_floor")
        extra = {"eta_start": cfg["eta_start"]} if self.mode == "progressive" else {}
        return {"cfg": {k: cfg[k] for k in keys}, "space": self.space.describe(), "seed": self.seed,
                "robust": self.robust, "n_train": len(self.pruner.task.train), "latency": self.latency,
                "search_mode": self.mode, **extra}

    def m_prime(self, share: float, width: int) -> int:
        """M' as a share of the unpruned pre-decision width, never below the schedule's floor."""
        m = max(self.pruner.m_floor(len(self.u)), LU.share_to_count(share, len(self.u)))
        return int(min(m, width))

    def _oneshot(self, plan, encoding):
        from natkit.utils.seed import derive_seed

        m = self.m_prime(plan["kept_share"], len(self.u))
        model, removed = self.pruner.prune(self.base, LU.keep_top(self.u, m), plan["eta"])
        self.pruner.finetune(model, self.pruner.cfg.finetune_epochs, seed=derive_seed(self.seed, encoding))
        return model, removed, m, {"rounds": 1, "finetune_epochs": self.pruner.cfg.finetune_epochs}

    def _progressive(self, plan):
        cfg = self.pruner.cfg
        seq = eta_rounds(plan["eta"], self.n_groups, cfg.eta_start, cfg.eta_step)
        share = plan["kept_share"]
        # the longest cached prefix of this candidate's schedule
        start, model, removed_all, epochs, m = 0, self.base, {}, 0.0, None
        for r in range(len(seq), 0, -1):
            hit = self._cache.get((share, tuple(seq[:r])))
            if hit is not None:
                start, (model, removed_all, epochs, m) = r, hit
                break
        for r in range(start, len(seq)):
            u, _, _ = self.pruner.utility(model)
            m = self.m_prime(share, len(u))
            cand, removed = self.pruner.prune(model, LU.keep_top(u, m), np.asarray(seq[r]))
            if removed:
                self.pruner.finetune(cand, cfg.finetune_epochs, seed=self.seed + 1 + r)
                epochs += cfg.finetune_epochs
                removed_all = {k: removed_all.get(k, 0) + removed.get(k, 0) for k in {*removed_all, *removed}}
            else:
                cand = model  # nothing changed: keep the network (and its training) as it is
            model = cand
            self._cache[(share, tuple(seq[:r + 1]))] = (model, removed_all, epochs, m)
        return model, removed_all, m, {"rounds": len(seq), "finetune_epochs": epochs}

    def _evaluate(self, encoding):
        plan = self.space.decode(encoding)
        if self.mode == "oneshot":
            model, removed, m, info = self._oneshot(plan, encoding)
        else:
            model, removed, m, info = self._progressive(plan)
        metrics = self.pruner.metrics(model, self.robust, self.latency)
        extra = {"stage": "search", "search_mode": self.mode, "eta": plan["eta"], "kept_share": plan["kept_share"],
                 "m_prime": m, "removed": removed, "params_removed": 1 - metrics["params"] / self.p0, **info}
        return metrics, model.natkit_arch, extra, model
