"""What a method's ``run(ctx)`` receives: the run's identity, task, budget, objectives, device, logging,
its typed options and its handle on the one archive writer. Nothing else: pretraining a source model
and finishing a run are ordinary functions (``natkit.methods.common``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from natkit.core.archive import Archive
from natkit.core.budget import Budget
from natkit.core.options import Options
from natkit.core.problem import ArchiveProblem, SerialRunner, make_eval_key
from natkit.core.progress import SearchProgress
from natkit.core.search import log_generation, nsga, run_pymoo
from natkit.core.writer import ArchiveWriter


@dataclass
class RunContext:
    method: str
    task: object  # the target Task
    archive: Archive
    run_id: int
    out_dir: Path
    options: Options  # the method's typed options (``natkit.core.options``)
    seed: int = 0
    objectives: list = field(default_factory=lambda: ["error", "macs"])
    budget: Budget = field(default_factory=Budget)
    device: str = "cpu"
    resume: bool = False
    source_spec: str | None = "fashion-mnist"
    data_root: str | None = None
    runner: object = field(default_factory=SerialRunner)
    keep_models: str = "front"  # front | all | none
    verbose: bool = True
    stats: dict = field(default_factory=dict)  # what the method wants recorded in run.json
    # run_id=None with start_run: the run row is written when first needed, so a space or option a method
    # rejects before touching the archive leaves no trace in it
    start_run: object = None
    progress: SearchProgress = field(default_factory=lambda: SearchProgress("", enabled=False))

    def __post_init__(self):
        self.out_dir = Path(self.out_dir)

    @property
    def wants_latency(self) -> bool:
        """``latency_ms`` is an objective or a budget constraint: evaluators must report it."""
        return "latency_ms" in self.objectives or "latency_ms" in getattr(self.budget, "limits", {})

    @property
    def started(self) -> bool:
        return self.__dict__.get("_run_id") is not None

    def log(self, msg: str) -> None:
        if self.verbose:
            self.progress.write(f"[{self.method}] {msg}")

    @property
    def model_dir(self) -> Path:
        return self.out_dir / "models"

    @property
    def writer(self) -> ArchiveWriter:
        """The run's handle on the one archive writer (look-up, budget, status, model saving)."""
        return ArchiveWriter(self.archive, self.run_id, self.method, self.budget,
                             self.model_dir if self.keep_models != "none" else None, chance=self.chance,
                             log=self.log)

    @property
    def chance(self):
        """The chance level of the val images the method measures on (all of the target's val split, or the
        first ``options.val_images()``; natkit/core/chance.py)."""
        from natkit.core.chance import chance_level

        if not hasattr(self.task, "val"):  # a table task has no val split
            return None
        return chance_level(self.task, getattr(self.options, "val_images", lambda: None)())

    def save_model(self, cand_id: int, model) -> None:
        self.writer.save_model(cand_id, model)

    def bounds(self, maxima: dict) -> list[tuple[float, float]]:
        """Fixed normalisation bounds for hypervolume, one per objective, stored in the run."""
        b = [(0.0, 1.0) if o in ("error", "robust_error") else (0.0, float(maxima[o])) for o in self.objectives]
        self.stats["hv_bounds"] = dict(zip(self.objectives, b))
        return b

    def eval_key(self, settings: dict, method: str | None = None) -> str:
        return make_eval_key(self.task.spec, method or self.method, settings)

    def problem(self, space, evaluator, *, method: str | None = None, worst=None) -> ArchiveProblem:
        key = self.eval_key(evaluator.settings(), method)
        return ArchiveProblem(space, evaluator, self.objectives, self.budget, self.archive, self.run_id,
                              method or self.method, key, worst=worst, runner=self.runner,
                              model_dir=self.model_dir if self.keep_models != "none" else None,
                              chance=self.chance, log=self.log)

    def algorithm(self, sampling=None, pop_size: int | None = None):
        return nsga(len(self.objectives), pop_size or self.options.pop_size, sampling=sampling, seed=self.seed)

    def minimize(self, problem, bounds, algorithm=None, generations=None, time_limit: float = 0.0):
        """pymoo's search over ``problem``; ``time_limit`` > 0: also stop at the first generation boundary
        after that many seconds (``natkit.core.search.termination``)."""
        algorithm = algorithm or self.algorithm()
        generations = generations or self.options.generations
        self.progress.expect(getattr(algorithm, "pop_size", self.options.pop_size) * generations)
        return run_pymoo(problem, algorithm, generations=generations, seed=self.seed, bounds=bounds,
                         time_limit=time_limit)

    def log_generation(self, problem, bounds) -> float:
        return log_generation(problem, bounds)

    def write_json(self, name: str, data) -> Path:
        p = self.out_dir / name
        p.write_text(json.dumps(data, indent=2, default=str))
        return p


def _get_run_id(self):
    if self.__dict__.get("_run_id") is None and self.start_run is not None:
        self.__dict__["_run_id"] = self.start_run()
    return self.__dict__.get("_run_id")


def _set_run_id(self, value):
    self.__dict__["_run_id"] = value


RunContext.run_id = property(_get_run_id, _set_run_id)
