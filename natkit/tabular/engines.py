"""Search engines on a table task: NAT's surrogate-assisted loop, plain NSGA-II/III and random.

All three query the table only through ``TableRun.evaluate``, which counts distinct architectures, so a
budget of N evaluations means N table queries for every engine. None of them depends on the budget
other than by stopping: a run with budget N is exactly the first N evaluations of a longer run with
the same seed (the benchmark relies on this; ``tests/test_table_engines.py`` checks it).
"""

from __future__ import annotations

import numpy as np

from natkit.core.archive import encode_key, nondominated
from natkit.errors import ConfigError

# NAT on a table: the loop of natkit.methods.nat without its supernet steps (no warm-up, adaptation or
# re-evaluation: a table's answers do not go stale). `initial` random architectures, then per
# iteration `k` proposals from an NSGA search on surrogate predictions.
NAT_TABLE_DEFAULTS = dict(initial=10, k=5, k_growth=0.05, surrogate="adaptive", cost_surrogate="rbf", reselect=1.5,
                          inner="auto", search_pop=40, search_generations=30)
ENUMERATE_LIMIT = 100_000  # inner="auto": predict every row of tables up to this size instead of NSGA


def run_random(run, pop_size: int, seed: int) -> None:
    """Distinct table architectures uniformly at random, in batches of ``pop_size``."""
    rng = np.random.default_rng(seed)
    order = run.table.X[rng.permutation(len(run.table))]
    start = 0
    while run.remaining > 0 and start < len(order):
        batch = order[start:start + min(pop_size, run.remaining)]
        run.evaluate(batch)
        start += len(batch)


def _unseen_only(run):
    """pymoo duplicate elimination that also counts architectures the run has already queried as
    duplicates, so mating keeps drawing until its offspring are new: without it a converged NSGA-II
    population re-proposes queried architectures (measured: seed 2 stalled at 321 of 400 evaluations)."""
    from pymoo.core.duplicate import DefaultDuplicateElimination

    class UnseenOnly(DefaultDuplicateElimination):
        def _do(self, pop, other, is_duplicate):
            is_duplicate = super()._do(pop, other, is_duplicate)
            X = np.clip(np.rint(pop.get("X")), run.space.xl, run.space.xu).astype(int)
            # an architecture missing from a partial table is no candidate either
            rows = [run.table.row(x) for x in X]
            is_duplicate[[r is None or r in run.seen_rows for r in rows]] = True
            return is_duplicate

    return UnseenOnly()


def run_nsga(run, pop_size: int, seed: int, max_idle: int = 20) -> None:
    """pymoo's NSGA-II (2 objectives) / NSGA-III (3+) with integer operators, driven by ask/tell so the
    last generation can stop at the budget; offspring are new architectures (``_unseen_only``). When
    mating finds nothing new in its 100 tries (a converged population in a small table), the generation
    is drawn from unseen architectures at random, as a restart would; ends after ``max_idle``
    generations without a new architecture."""
    from pymoo.core.population import Population
    from pymoo.termination.max_gen import MaximumGenerationTermination

    from natkit.core.search import nsga

    algorithm = nsga(len(run.objectives), pop_size, seed=seed)
    unseen = _unseen_only(run)
    algorithm.eliminate_duplicates = algorithm.initialization.eliminate_duplicates = unseen
    algorithm.mating.eliminate_duplicates = unseen
    algorithm.setup(run.problem, termination=MaximumGenerationTermination(10 ** 9), seed=int(seed), verbose=False)
    idle, rng = 0, np.random.default_rng(seed)
    while run.remaining > 0 and idle < max_idle:
        before = len(run.seen)
        pop = algorithm.ask()
        if pop is None or not len(pop):
            algorithm.termination.force_termination = False
            unseen = np.ones(len(run.table), bool)
            unseen[[run.table.row(e) for e, _, _ in run.seen.values()]] = False
            rows = rng.permutation(np.flatnonzero(unseen))[:pop_size]
            pop = Population.new(X=run.table.X[rows].astype(float))
        take, out = run.evaluate(pop.get("X"))
        if take:
            sub = pop[take]
            sub.set("F", out["F"])
            if "G" in out:
                sub.set("G", out["G"])
            for ind in sub:
                ind.evaluated = {"F", "G", "H"} if "G" in out else {"F"}
            algorithm.tell(infills=sub)
        idle = idle + 1 if len(run.seen) == before else 0


class NATTable:
    """NAT's surrogate-assisted loop on a table (``natkit.methods.nat`` minus the supernet).

    Each iteration fits the accuracy surrogate (NAT's adaptive switch: the family with the best
    cross-validated Kendall tau; re-selected whenever the archive has grown by ``reselect`` times since
    the last choice, refitted every iteration) and a surrogate per cost column on one-hot genes, runs
    NSGA on the predictions seeded with the archive's non-dominated set, and queries ``k`` unseen
    architectures spread along the predicted front (pymoo's rank and crowding survival). Costs are
    learned from queried architectures like accuracy, so the engine sees nothing the other engines do
    not. On a table the inner search can be exact: with ``inner="auto"`` a table of up to
    ``ENUMERATE_LIMIT`` rows is predicted row by row (``enumerate``) instead of searched by NSGA.
    """

    def __init__(self, run, seed: int, options: dict):
        unknown = sorted(set(options) - set(NAT_TABLE_DEFAULTS))
        if unknown:
            raise ConfigError(f"unknown nat option {unknown[0]!r} on a table task; known: "
                              f"{', '.join(sorted(NAT_TABLE_DEFAULTS))}, evaluations")
        self.run, self.seed, self.o = run, int(seed), {**NAT_TABLE_DEFAULTS, **options}
        if self.o["inner"] not in ("auto", "nsga", "enumerate"):
            raise ConfigError(f"option inner must be auto, nsga or enumerate, got {self.o['inner']!r}")
        for key in ("initial", "k", "search_pop", "search_generations"):
            if int(self.o[key]) < (2 if key != "search_generations" else 1):
                raise ConfigError(f"option {key} must be at least 2, got {self.o[key]!r}")
        self.rng = np.random.default_rng(self.seed)
        self.space = run.space
        self.chosen: str | None = None
        self.chosen_at = 0
        self.iterations: list[dict] = []

    def __call__(self) -> list[dict]:
        run = self.run
        # NAT's initial archive: the space's two extremes (first and last choice everywhere: the smallest
        # and largest network when choices are listed by size, as docs/table_format.md asks) plus random
        # architectures; full batches always (the run truncates the last one), so a budget only decides
        # where to stop
        X0 = [x for x in self.space.extremes() if self.run.table.row(x) is not None]
        X0 = np.vstack(X0 + [self.space.sample(int(self.o["initial"]) - len(X0), self.rng)])
        run.evaluate(X0)
        it = 0
        while run.remaining > 0:
            it += 1
            X, metrics = run.observed()
            predictors = self.fit(X, metrics, seed=self.seed * 1000 + it)
            # batches grow with the archive (k_growth of it, at least k): late iterations refine a well-
            # predicted front, and surrogate fits on a large archive are the engine's main cost
            k = max(int(self.o["k"]), int(np.ceil(float(self.o["k_growth"]) * len(X))))
            proposals = self.propose(X, predictors, k, seed=self.seed * 1000 + it)
            if not len(proposals):  # the whole table has been seen
                break
            run.evaluate(proposals)
            self.iterations.append({"iteration": it, "surrogate": self.chosen, "n_evals": len(run.seen)})
        return self.iterations

    # -- surrogates --------------------------------------------------------------------------------
    def fit(self, X, metrics, seed: int) -> dict:
        from natkit.methods.nat.surrogate import create_surrogate

        feats = self.space.one_hot(X)
        predictors = {}
        for o in self.run.objectives:
            y = np.array([m[o] for m in metrics], float)
            name = self.o["surrogate"] if o == "error" else self.o["cost_surrogate"]
            if o == "error" and name == "adaptive":
                name = self._select(feats, y, seed)
            model = create_surrogate(name, seed=seed)
            if len(y) < model.min_samples:
                model = create_surrogate("trees", seed=seed)
            predictors[o] = model.fit(feats, y)
        return predictors

    def _select(self, feats, y, seed) -> str:
        """NAT's adaptive switch, re-run only when the archive has grown enough to change its verdict
        (cross-validating five families on every iteration would dominate the engine's time)."""
        from natkit.methods.nat.surrogate import AdaptiveSurrogate

        if self.chosen is None or len(y) >= float(self.o["reselect"]) * self.chosen_at:
            ad = AdaptiveSurrogate(seed=seed)
            if len(y) >= ad.min_samples:
                ad.fit(feats, y)
                self.chosen, self.chosen_at = ad.chosen, len(y)
            else:
                return "trees"
        return self.chosen

    def predict(self, X, predictors) -> np.ndarray:
        feats = self.space.one_hot(X)
        return np.column_stack([predictors[o].predict(feats) for o in self.run.objectives])

    # -- proposals ---------------------------------------------------------------------------------
    def propose(self, X, predictors, k: int, seed: int) -> np.ndarray:
        inner = self.o["inner"]
        if inner == "enumerate" or inner == "auto" and len(self.run.table) <= ENUMERATE_LIMIT:
            unseen = np.ones(len(self.run.table), bool)
            unseen[[self.run.table.row(enc) for enc, _, _ in self.run.seen.values()]] = False
            Xp = self.run.table.X[unseen]
        else:
            Xp = self._search(X, predictors, k, seed)
        if not len(Xp):
            return np.zeros((0, self.space.n_var), dtype=int)
        return Xp[self._spread(self.predict(Xp, predictors), k, seed)]

    def _spread(self, F, k: int, seed: int) -> list[int]:
        """``k`` rows by pymoo's rank and crowding survival: the predicted front first, its extremes and
        least crowded members before the rest."""
        from pymoo.core.population import Population
        from pymoo.core.problem import Problem
        from pymoo.operators.survival.rank_and_crowding import RankAndCrowding
        from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

        # only the first fronts that hold k rows can survive: rank them alone (thousands of rows otherwise)
        fronts = NonDominatedSorting().do(F, n_stop_if_ranked=k)
        pool = np.concatenate(fronts)
        pop = Population.new(X=pool[:, None], F=F[pool])
        keep = RankAndCrowding().do(Problem(n_var=1, n_obj=F.shape[1]), pop, n_survive=min(k, len(F)),
                                    random_state=np.random.default_rng(seed))
        return [int(i) for i in keep.get("X")[:, 0]]

    def _search(self, X, predictors, k: int, seed: int) -> np.ndarray:
        from pymoo.core.problem import Problem
        from pymoo.optimize import minimize

        from natkit.core.search import nsga

        engine = self

        class SurrogateProblem(Problem):
            def __init__(self):
                super().__init__(n_var=engine.space.n_var, n_obj=len(engine.run.objectives), xl=engine.space.xl,
                                 xu=engine.space.xu, vtype=int)

            def _evaluate(self, Z, out, *args, **kwargs):
                out["F"] = engine.predict(np.rint(Z).astype(int), predictors)

        pop = int(self.o["search_pop"])
        observed = self.predict(X, predictors) if len(X) else np.zeros((0, len(self.run.objectives)))
        seeds = X[nondominated(observed)] if len(X) else X
        init = np.unique(np.vstack([seeds, self.space.sample(pop, self.rng)]), axis=0)[:pop]
        if len(init) < pop:
            init = np.vstack([init, self.space.sample(pop - len(init), self.rng)])
        res = minimize(SurrogateProblem(), nsga(len(self.run.objectives), pop, sampling=init.astype(float)),
                       ("n_gen", int(self.o["search_generations"])), seed=int(seed), verbose=False)
        cand = np.unique(np.rint(res.pop.get("X")).astype(int), axis=0)
        fresh = [x for x in cand if encode_key([int(v) for v in x]) not in self.run.seen and self.run.table.row(x) is not None]
        if len(fresh) < k:  # the inner search rediscovered seen architectures: fill with unseen ones
            fresh += self._unseen(k - len(fresh), exclude={encode_key([int(v) for v in x]) for x in fresh})
        return np.array(fresh, dtype=int).reshape(-1, self.space.n_var)

    def _unseen(self, n: int, exclude: set) -> list:
        out = []
        for row in self.rng.permutation(len(self.run.table)):
            x = self.run.table.X[row]
            key = encode_key([int(v) for v in x])
            if key not in self.run.seen and key not in exclude:
                out.append(x)
                exclude.add(key)
                if len(out) == n:
                    break
        return out
