"""NAT: Neural Architecture Transfer (Lu et al., 2020).

A supernet pretrained on the source task is adapted to the target while a surrogate-assisted
many-objective evolutionary search looks for its best subnets:

1. the archive starts with the largest, the smallest and random subnets, evaluated for real
   (weight sharing, BN recalibrated on cached images, error on the target's val split);
2. each iteration (a) fits an accuracy surrogate on the archive, (b) runs NSGA-II (2 objectives)
   or NSGA-III (3+) in pymoo on surrogate error plus exact complexity objectives, seeded with the
   archive's non-dominated set, (c) evaluates K candidates spread along the predicted front,
   (d) adapts the supernet on the target with subnets drawn from per-gene distributions fitted
   to the archive's best members (distilled from the largest subnet) and (e) re-evaluates the
   archive, whose accuracies went stale with the weights.

Every real evaluation, re-evaluations included, is archived with method ``nat``. After every
iteration the supernet and the loop state go to ``OUT/nat_state/`` (``nat_checkpoint.py``), so
``--resume`` continues after the last finished iteration and ends as an uninterrupted run would.
"""

from __future__ import annotations

import time

import numpy as np

from natkit.core.archive import OBJECTIVES, encode_key, nondominated
from natkit.core.budget import Budget
from natkit.core.config import read_toml
from natkit.core.search import hypervolume
from natkit.core.writer import ArchiveWriter
from natkit.methods.common import finalize, source_task
from natkit.methods.nat.checkpoint import NATCheckpoint, reuse
from natkit.methods.nat.space import NATSpace, count_params_macs
from natkit.methods.nat.supernet import (GeneDistribution, InPlaceEvaluator, new_head, pretrain_supernet,
                                         train_supernet)
from natkit.train.schedule import scaled_epochs
from natkit.methods.nat.surrogate import create_surrogate, rank_metrics

# Options is the registry's view of this method; load_nat_space/space_config are used by benchmarks and tests
from natkit.methods.nat.options import Options, load_nat_space, space_config  # noqa: F401

FINETUNE_LR = 0.01


# ----------------------------------------------------------------------------------------------
# the surrogate-side pymoo problem


class _SurrogateProblem:
    """Factory for the pymoo problem on predicted error (and latency) plus closed-form counts."""

    @staticmethod
    def make(space: NATSpace, objectives, budget: Budget, predictors: dict):
        from pymoo.core.problem import Problem

        class SurrogateProblem(Problem):
            def __init__(self):
                super().__init__(n_var=space.n_var, n_obj=len(objectives), n_ieq_constr=budget.n_constr,
                                 xl=space.xl, xu=space.xu, vtype=int)

            def _evaluate(self, X, out, *args, **kwargs):
                out.update(predict_metrics(space, X, objectives, budget, predictors))

        return SurrogateProblem()


def predict_metrics(space, X, objectives, budget, predictors) -> dict:
    X = space.repair_many(X)
    feats = space.features(X)
    counts = [count_params_macs(space.decode(x)) for x in X]
    cols = {"params": np.array([c["params"] for c in counts], float),
            "macs": np.array([c["macs"] for c in counts], float)}
    for name, model in predictors.items():
        cols[name] = model.predict(feats)
    out = {"F": np.column_stack([cols[o] for o in objectives])}
    if budget.n_constr:
        out["G"] = np.array([budget.g({k: v[i] for k, v in cols.items()}) for i in range(len(X))])
    return out


def _repair_operator(space):
    from pymoo.core.repair import Repair

    class GenomeRepair(Repair):
        def _do(self, problem, X, **kwargs):
            return space.repair_many(X)

    return GenomeRepair()


def make_algorithm(space, n_obj: int, pop_size: int, sampling):
    """NSGA-II (2 objectives) or NSGA-III (3+) with integer SBX/PM and the genome repair."""
    from natkit.core.search import nsga

    return nsga(n_obj, pop_size, sampling=sampling, repair=_repair_operator(space))


def spread_subset(F: np.ndarray, k: int) -> list[int]:
    """``k`` rows of ``F`` spread along the front: start at the best of the first objective, then
    repeatedly add the point farthest (in normalised objective space) from those chosen.
    Hand-written because pymoo has no subset-selection operator; it is a few lines."""
    if len(F) <= k:
        return list(range(len(F)))
    Z = (F - F.min(0)) / np.maximum(np.ptp(F, 0), 1e-12)
    chosen = [int(np.argmin(Z[:, 0]))]
    dist = np.linalg.norm(Z - Z[chosen[0]], axis=1)
    while len(chosen) < k:
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(Z - Z[nxt], axis=1))
    return chosen


# ----------------------------------------------------------------------------------------------
# the loop


class NATLoop:
    def __init__(self, ctx, space: NATSpace, net, evaluator: InPlaceEvaluator, nat: dict, budget: Budget):
        self.ctx, self.space, self.net, self.ev, self.nat, self.budget = ctx, space, net, evaluator, nat, budget
        self.writer = ArchiveWriter(ctx.archive, ctx.run_id, "nat", budget,
                                    ctx.model_dir if ctx.keep_models != "none" else None)
        self.objectives = list(ctx.objectives)
        self.members: dict = {}  # genome key -> {"x", "metrics", "id", "status"} (latest evaluation)
        self.rng = np.random.default_rng(ctx.seed)
        self.n_new = 0  # distinct subnets evaluated
        self.n_real = 0  # real evaluations including re-evaluations
        self.log: list[dict] = []
        self.pending: dict = {}  # on resume: rows an interrupted iteration archived, read back by evaluate()
        big = space.decode(space.extremes()[0])
        maxima = count_params_macs(big)
        if "latency_ms" in self.objectives:
            from natkit.measure.latency import measure_latency_ms

            maxima["latency_ms"] = measure_latency_ms(net.extract(big), big["resolution"], net.in_channels)
        self.bounds = ctx.bounds(maxima)

    # -- real evaluations ------------------------------------------------------------------------
    def eval_key(self, **more) -> str:
        """The evaluation key of the supernet's current weights. Once adapted, the weights are a product of
        this run (its adaptation settings and history), so the key names the run: the writer's look-up must
        not hand another run's accuracy at the same supernet version to this one."""
        settings = {**self.ev.settings(), **more}
        if settings.get("supernet_version"):
            settings["adapted_in_run"] = self.ctx.run_id
        return self.ctx.eval_key(settings)

    def evaluate(self, X, generation: int, reevaluation: bool = False) -> list[dict]:
        out = []
        key = self.eval_key()
        for x in np.atleast_2d(X):
            x = [int(v) for v in x]
            rec = reuse(self, key, x, self.budget)
            if rec is not None:  # archived before an interruption: read back, not evaluated again
                self._record(rec, reevaluation, saved=False)
                out.append(rec)
                continue
            row = self.writer.write(x, lambda x=x: self.ev.evaluate(x), eval_key=key, generation=generation,
                                    extra={"reevaluation": reevaluation})
            metrics = {k: row.metrics[k] for k in OBJECTIVES if row.metrics.get(k) is not None}
            rec = {"x": x, "metrics": metrics, "id": row.id, "status": row.status}
            self._record(rec, reevaluation, saved=not row.reused)
            out.append(rec)
        return out

    def _record(self, rec, reevaluation: bool, saved: bool) -> None:
        """Count ``rec``, make it the genome's current member and keep its model if on the front
        (``saved``: the supernet's BN is still calibrated for it)."""
        x, cid = rec["x"], rec["id"]
        self.n_real += 1
        if not reevaluation:
            self.n_new += 1
        previous = self.members.get(encode_key(x))
        if previous is not None and previous["id"] != cid:
            # the supernet moved on: the old accuracy is history, not a front member
            self.ctx.archive.mark_stale([previous["id"]], f"superseded by candidate {cid} after adaptation")
        self.members[encode_key(x)] = rec
        if rec["status"] == "ok" and self.ctx.keep_models != "none" and self._on_front(rec) and \
                (saved or not (self.ctx.model_dir / str(cid) / "arch.json").is_file()):
            self.writer.save_model(cid, self.ev.model(x, calibrated=saved))

    def _on_front(self, rec) -> bool:
        ok = [m for m in self.members.values() if m["status"] == "ok"]
        F = np.array([[m["metrics"][o] for o in self.objectives] for m in ok], float)
        return any(ok[i] is rec for i in nondominated(F))

    def current(self, feasible_only=False):
        recs = [m for m in self.members.values() if m["status"] in (("ok",) if feasible_only else ("ok", "infeasible"))]
        X = np.array([m["x"] for m in recs], dtype=int).reshape(-1, self.space.n_var)
        F = np.array([[m["metrics"][o] for o in self.objectives] for m in recs], float).reshape(-1, len(self.objectives))
        return recs, X, F

    def hv(self) -> tuple[float, int]:
        _, _, F = self.current(feasible_only=True)
        if not len(F):
            return 0.0, 0
        front = F[nondominated(F)]
        return hypervolume(front, self.bounds), len(front)

    # -- steps -------------------------------------------------------------------------------------
    def adapt(self, epochs: float, genomes, seed: int):
        """Sandwich steps on the target: the largest subnet (teacher), the smallest (so the cheap end of
        the front keeps being trained) and subnets drawn from the per-gene distributions."""
        dist = GeneDistribution(self.space, genomes)
        epochs = scaled_epochs(epochs, len(self.ev.task.train), int(self.nat["batch_size"]))
        train_supernet(self.net, self.space, self.ev.task, epochs=epochs, batch_size=int(self.nat["batch_size"]),
                       lr=float(self.nat["adapt_lr"]), sampler=dist.sample, n_sampled=int(self.nat["adapt_samples"]),
                       teacher_genome=self.space.extremes()[0], extra_genomes=(self.space.extremes()[1],),
                       seed=seed, device=self.ctx.device)
        self.ev.version += 1

    def best_genomes(self, at_least: int) -> np.ndarray:
        """The archive's first non-dominated fronts, until ``at_least`` members are collected."""
        from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

        recs, X, F = self.current(feasible_only=True)
        if not len(F):
            return X
        picked = []
        for front in NonDominatedSorting().do(F):
            picked.extend(front)
            if len(picked) >= at_least:
                break
        return X[picked]

    def fit_predictors(self, seed: int) -> dict:
        recs, X, _ = self.current(feasible_only=False)
        feats = self.space.features(X)
        predictors = {}
        for o in ("error", "latency_ms"):
            if o in self.objectives or (o == "latency_ms" and "latency_ms" in self.budget.limits):
                y = np.array([m["metrics"][o] for m in recs], float)
                model = create_surrogate(self.nat["surrogate"], seed=seed)
                if len(y) < model.min_samples:  # too young an archive for this family: trees need 2
                    model = create_surrogate("trees", seed=seed)
                predictors[o] = model.fit(feats, y)
        return predictors

    def propose(self, predictors, k: int, seed: int) -> np.ndarray:
        """Surrogate-assisted NSGA search seeded with the archive's non-dominated set; K new genomes."""
        from pymoo.optimize import minimize

        problem = _SurrogateProblem.make(self.space, self.objectives, self.budget, predictors)
        pop = int(self.nat["search_pop"])
        recs, X, F = self.current(feasible_only=False)
        seeds = X[nondominated(F)] if len(F) else X
        fill = self.space.sample(max(0, pop - len(seeds)), self.rng)
        init = np.unique(np.vstack([seeds, fill]), axis=0)[:pop] if len(seeds) else fill
        if len(init) < pop:
            init = np.vstack([init, self.space.sample(pop - len(init), self.rng)])
        algo = make_algorithm(self.space, len(self.objectives), pop, init.astype(float))
        res = minimize(problem, algo, ("n_gen", int(self.nat["search_generations"])), seed=int(seed), verbose=False)
        Xp = self.space.repair_many(res.pop.get("X"))
        Xp = np.unique(Xp, axis=0)
        Xp = np.array([x for x in Xp if encode_key([int(v) for v in x]) not in self.members]).reshape(-1, self.space.n_var)
        if not len(Xp):  # the search only rediscovered archived subnets: explore instead
            return self.space.sample(k, self.rng)
        pred = predict_metrics(self.space, Xp, self.objectives, self.budget, predictors)
        Fp, G = pred["F"], pred.get("G")
        ok = np.all(G <= 0, axis=1) if G is not None else np.ones(len(Xp), bool)
        pool = np.flatnonzero(ok) if ok.any() else np.arange(len(Xp))
        nd = pool[nondominated(Fp[pool])]
        chosen = list(nd[spread_subset(Fp[nd], k)])
        rest = [i for i in pool if i not in chosen]
        rest.sort(key=lambda i: Fp[i, 0])
        chosen += rest[: max(0, k - len(chosen))]
        return Xp[chosen[:k]]

    def propose_nsga2(self, k: int, seed: int) -> np.ndarray:
        """Ablation without a surrogate: one NSGA-II mating step (pymoo ask/tell) on the archive's real
        objectives (rank and crowding tournament, the same integer SBX/PM and repair) gives ``k``
        offspring, which are then evaluated for real like the surrogate's proposals."""
        from pymoo.core.problem import Problem

        recs, X, F = self.current(feasible_only=False)
        problem = Problem(n_var=self.space.n_var, n_obj=len(self.objectives), xl=self.space.xl, xu=self.space.xu,
                          vtype=int)
        algo = make_algorithm(self.space, len(self.objectives), len(X), X.astype(float))
        algo.n_offsprings = int(k)
        algo.setup(problem, seed=int(seed))
        pop = algo.ask()  # the archive itself, as the initial population
        pop.set("F", F)
        algo.tell(infills=pop)
        Xp = self.space.repair_many(algo.ask().get("X"))
        Xp = np.array([x for x in np.unique(Xp, axis=0) if encode_key([int(v) for v in x]) not in self.members],
                      dtype=int).reshape(-1, self.space.n_var)
        if len(Xp) < k:  # mating only rediscovered archived subnets: fill with random ones
            Xp = np.vstack([Xp, self.space.sample(k - len(Xp), self.rng)])
        return Xp[:k]

    def propose_random(self, k: int) -> np.ndarray:
        """Ablation: ``k`` uniformly random genomes not in the archive (an archived genome would only be
        re-evaluated, and the arm would see fewer distinct subnets than the others)."""
        out, seen = [], set(self.members)
        for _ in range(1000):
            for x in self.space.sample(k, self.rng):
                key = encode_key([int(v) for v in x])
                if key not in seen:
                    seen.add(key)
                    out.append(x)
            if len(out) >= k:
                break
        return np.array(out[:k], dtype=int).reshape(-1, self.space.n_var)

    # -- driver ------------------------------------------------------------------------------------
    def run(self, initial=None, checkpoint: NATCheckpoint | None = None):
        """The whole loop; ``initial`` replaces the random initial genomes (benchmarks share them).
        With a ``checkpoint`` the state is saved after every iteration, and on ``ctx.resume`` the
        loop continues after the last saved one."""
        ctx, nat = self.ctx, self.nat
        done = checkpoint.load(self) if checkpoint is not None and ctx.resume else None
        if done is not None:
            ctx.log(f"resume: supernet and loop state restored after iteration {done}")
        else:
            self._initial(initial, checkpoint)
            done = 0
        for it in range(done + 1, int(nat["iterations"]) + 1):
            self._iteration(it)
            if checkpoint is not None:
                checkpoint.save(self, it)
        left = [c.id for rows in self.pending.values() for c in rows]
        if left:  # only if a resumed run took another path than the interrupted one (e.g. latency noise)
            ctx.archive.mark_stale(left, "archived by an interrupted iteration that the resumed run did not repeat")
            self.pending = {}  # stale now: nothing later may read them back
        return self.log

    def _initial(self, initial, checkpoint):
        ctx, nat = self.ctx, self.nat
        if nat["adapt"] and nat["warmup_epochs"] > 0:
            ctx.log(f"warm-up adaptation on {ctx.task.spec} for {nat['warmup_epochs']} epoch(s)")
            self.adapt(float(nat["warmup_epochs"]), None, seed=ctx.seed)
        n0 = int(nat["initial"])
        X0 = initial if initial is not None else \
            np.vstack([self.space.extremes(), self.space.sample(max(0, n0 - 2), self.rng)])
        self.evaluate(np.unique(X0, axis=0), generation=0)
        hv, size = self.hv()
        ctx.archive.log_generation(ctx.run_id, 0, self.n_new, hv, size)
        ctx.log(f"initial archive: {len(self.members)} subnets, HV {hv:.4f}")
        self.log.append({"iteration": 0, "n_new": self.n_new, "n_real": self.n_real, "hv": hv, "front_size": size})
        if checkpoint is not None:
            checkpoint.save(self, 0)

    def _iteration(self, it: int):
        ctx, nat = self.ctx, self.nat
        t0 = time.perf_counter()
        entry = {"iteration": it}
        proposals = nat.get("proposals", "surrogate") if nat["use_surrogate"] else "random"
        if proposals == "surrogate":
            predictors = self.fit_predictors(seed=ctx.seed + it)
            err_model = predictors["error"] if "error" in predictors else None
            if err_model is not None and hasattr(err_model, "chosen"):
                entry["surrogate"] = err_model.chosen
                entry["surrogate_cv"] = err_model.scores
            X = self.propose(predictors, int(nat["k"]), seed=ctx.seed * 1000 + it)
        elif proposals == "nsga2":  # ablation: NSGA-II offspring of the real archive, no surrogate
            predictors, X = {}, self.propose_nsga2(int(nat["k"]), seed=ctx.seed * 1000 + it)
        else:  # ablation: random proposals instead of the surrogate-assisted search
            predictors, X = {}, self.propose_random(int(nat["k"]))
        recs = self.evaluate(X, generation=it)
        if predictors.get("error") is not None and len(recs) >= 2:
            ok = [r for r in recs if r["status"] != "failed"]
            pred = predictors["error"].predict(self.space.features(np.array([r["x"] for r in ok])))
            entry.update({f"surrogate_{k}": v for k, v in
                          rank_metrics([r["metrics"]["error"] for r in ok], pred).items()})
        if nat["adapt"] and nat["adapt_epochs"] > 0:
            best = self.best_genomes(max(5, len(self.members) // 3))
            self.adapt(float(nat["adapt_epochs"]), best, seed=ctx.seed * 1000 + it)
            recs_all, Xa, Fa = self.current(feasible_only=False)
            if nat["reeval"] == "front":
                Xa = Xa[nondominated(Fa)]
            self.evaluate(Xa, generation=it, reevaluation=True)
        hv, size = self.hv()
        ctx.archive.log_generation(ctx.run_id, it, self.n_new, hv, size)
        entry.update(n_new=self.n_new, n_real=self.n_real, hv=hv, front_size=size,
                     seconds=time.perf_counter() - t0)
        self.log.append(entry)
        tau = entry.get("surrogate_kendall")
        ctx.log(f"iteration {it}: {self.n_new} subnets evaluated, HV {hv:.4f}, front {size}"
                + (f", surrogate tau {tau:.2f}" if tau is not None else ""))


def _pretrained(ctx, config, pre):
    source = source_task(ctx, samples_per_class=int(pre["samples_per_class"]) or None)
    ctx.log(f"supernet pretraining on {source.spec} ({len(source.train)} images; cached after the first run)")
    net = pretrain_supernet(config, source, epochs=float(pre["epochs"]), warmup_epochs=float(pre["warmup_epochs"]),
                            batch_size=int(pre["batch_size"]), lr=float(pre["lr"]), n_random=int(pre["n_random"]),
                            distill=float(pre["distill"]), seed=ctx.seed, device=ctx.device, log=ctx.log)
    from natkit.train.source_quality import check_source

    check_source(source, net.natkit_source.get("val_error_largest"), log=ctx.log, stats=ctx.stats,
                 what="supernet (largest subnet)")
    return net


def build(ctx):
    """Pretrained (cached) supernet with a new head for the target, the space and the evaluator. The
    space file's [budget] is already the run's budget unless --budget was given (``natkit.api``)."""
    config = space_config(read_toml(ctx.options.space))
    pre, nat = ctx.options.tables()
    budget = ctx.budget
    from natkit.core.feasibility import require_reachable

    # a lower bound over grey and colour sources, so that no source data is loaded for the check
    counts = [NATSpace(config, num_classes=ctx.task.num_classes, in_channels=c).smallest_counts() for c in (1, 3)]
    require_reachable(budget, {k: min(c[k] for c in counts) for k in counts[0]}, f"the nat space {ctx.options.space}")
    net = _pretrained(ctx, config, pre)
    new_head(net, ctx.task.num_classes, seed=ctx.seed)
    space = NATSpace(config, num_classes=ctx.task.num_classes, in_channels=net.in_channels)
    ev = InPlaceEvaluator(net, space, ctx.task, n_calib=int(nat["n_calib"]), val_limit=int(nat["val_limit"]) or None,
                          latency=ctx.wants_latency, device=ctx.device, seed=ctx.seed)
    return net, space, ev, nat, budget


def run(ctx) -> None:
    net, space, ev, nat, budget = build(ctx)
    ctx.stats["supernet"] = {k: v for k, v in getattr(net, "natkit_source", {}).items() if k != "config"}
    loop = NATLoop(ctx, space, net, ev, nat, budget)
    checkpoint = NATCheckpoint(ctx.out_dir / "nat_state", {"nat": nat, "space": space.config.to_dict(),
                                                           "seed": ctx.seed, "objectives": loop.objectives,
                                                           "budget": budget.limits, "task": ctx.task.spec,
                                                           "supernet": ctx.stats["supernet"].get("path")})
    ctx.progress.expect(int(nat["initial"]) + int(nat["iterations"]) * int(nat["k"]))  # + re-evaluations
    log = loop.run(checkpoint=checkpoint)
    from natkit.methods.nat.front import settle_front

    ctx.stats["front_settled"] = settle_front(loop)
    # the settled state is the last checkpoint: a resume of the finished run must not take the settling's
    # re-evaluations (archived after the last iteration's checkpoint) for an interrupted iteration's rows
    checkpoint.save(loop, int(nat["iterations"]))
    if int(nat["finetune_epochs"]) > 0:
        finetune_front(ctx, loop, int(nat["finetune_epochs"]))
    ctx.stats.update(real_evaluations=loop.n_real, subnets_evaluated=loop.n_new, iterations=log)
    ctx.write_json("nat_log.json", {"settings": nat, "iterations": log})
    finalize(ctx)


def finetune_front(ctx, loop: NATLoop, epochs: int):
    """Optional: fine-tune the final front's subnets standalone on the target; archived as new rows."""
    from natkit.measure.counts import count_macs, count_params
    from natkit.train import evaluate

    recs, X, F = loop.current(feasible_only=True)
    key = loop.eval_key(finetune_epochs=epochs)
    done = {encode_key(c.encoding) for c in ctx.archive.candidates(run_id=ctx.run_id)
            if c.extra.get("stage") == "finetuned" and c.eval_key == key}  # before an interruption
    from natkit.core.evaluator import EvalResult

    def finetuned(x) -> EvalResult:
        t0 = time.perf_counter()
        model = finetune_subnet(loop.ev.model(x), ctx.task, epochs, seed=ctx.seed,
                                batch_size=int(loop.nat["batch_size"]), device=ctx.device)
        res = model.natkit_input["resolution"]
        # the images every other row of the run was measured on (and its chance level was computed for)
        err = evaluate(model, ctx.task, "val", device=ctx.device, resolution=res, channels=loop.net.in_channels,
                       limit=loop.ev.val_limit)
        metrics = {"error": err["error"], "params": count_params(model),
                   "macs": count_macs(model, res, loop.net.in_channels)}
        return EvalResult(metrics, getattr(model, "natkit_arch", None), "ok", "", {"stage": "finetuned"},
                          time.perf_counter() - t0, model)

    for i in nondominated(F):
        x = recs[i]["x"]
        if encode_key(x) in done:
            continue
        # fine-tuned under this process's claim, and only if no process has archived it yet
        loop.writer.write(x, lambda x=x: finetuned(x), eval_key=key, generation=len(loop.log))


def finetune_subnet(model, task, epochs: float, *, seed: int, batch_size: int, device="cpu",
                    lr: float = FINETUNE_LR):
    """Standalone fine-tuning of an extracted subnet (its weights inherited from the supernet, BN
    recalibrated); a lower rate than from-scratch training since the weights are already trained,
    and the target's batch size of the adaptation, so an epoch is as many steps as there."""
    from natkit.train import TrainConfig, train
    from natkit.train.schedule import scaled

    train(model, task, scaled(TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size), len(task.train)), device=device,
          resolution=model.natkit_input["resolution"], channels=model.natkit_input["channels"], seed=seed)
    return model.eval()
