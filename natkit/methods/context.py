"""What a method's ``run(ctx)`` receives: the task, the archive, the run's settings and helpers."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from natkit.core.archive import Archive
from natkit.core.budget import Budget
from natkit.core.problem import ArchiveProblem, SerialRunner, make_eval_key
from natkit.core.search import log_generation, nsga, run_pymoo


@dataclass
class RunContext:
    method: str
    task: object  # the target Task
    archive: Archive
    run_id: int
    out_dir: Path
    seed: int = 0
    generations: int = 10
    pop_size: int = 20
    objectives: list = field(default_factory=lambda: ["error", "macs"])
    budget: Budget = field(default_factory=Budget)
    quick: bool = False
    device: str = "cpu"
    options: dict = field(default_factory=dict)
    resume: bool = False
    source_spec: str | None = "fashion-mnist"
    data_root: str | None = None
    runner: object = field(default_factory=SerialRunner)
    keep_models: str = "front"  # front | all | none
    verbose: bool = True
    stats: dict = field(default_factory=dict)  # what the method wants recorded in run.json

    # --- helpers every method uses -------------------------------------------------------------
    def log(self, msg: str) -> None:
        if self.verbose:
            print(f"[{self.method}] {msg}", file=sys.stderr, flush=True)

    def option(self, key, default=None, cast=None):
        v = self.options.get(key, default)
        if cast is not None and v is not None:
            from natkit.errors import ConfigError

            try:
                v = cast(v) if cast is not bool else str(v).lower() in ("1", "true", "yes", "on")
            except (TypeError, ValueError):
                raise ConfigError(f"option {key}={v!r} is not a valid {cast.__name__}") from None
        return v

    def source_task(self, **kw):
        from natkit.data import load_task

        return load_task(self.source_spec or "fashion-mnist", root=self.data_root, seed=self.seed, **kw)

    def source_model(self, model_name: str | None = None, *, epochs: float = 2, resolution: int = 28,
                     source=None, **model_kw):
        """The source network: the user's ``--weights`` file if given, else natkit's cached pretraining
        of ``model_name`` (default ``--model`` or vgg_small) on the source task."""
        from natkit.errors import WeightsError
        from natkit.nets import create_model
        from natkit.nets.io import load_state_dict_file
        from natkit.train import pretrained

        name = model_name or self.option("model", "vgg_small")
        src = source or self.source_task()
        if self.options.get("weights"):
            model = create_model(name, num_classes=src.num_classes, in_channels=src.in_channels, **model_kw)
            try:
                model.load_state_dict(load_state_dict_file(self.options["weights"]))
            except RuntimeError as exc:
                raise WeightsError(f"weights file {self.options['weights']} does not fit {name}: "
                                   f"{str(exc).splitlines()[0]}") from None
            model.natkit_source = {"path": self.options["weights"]}
            return model.to(self.device)
        return pretrained(name, src, epochs=epochs, resolution=resolution, seed=self.seed, device=self.device,
                          **model_kw)

    @property
    def model_dir(self) -> Path:
        return self.out_dir / "models"

    def bounds(self, maxima: dict) -> list[tuple[float, float]]:
        """Fixed normalisation bounds for hypervolume, one per objective, stored in the run."""
        b = []
        for o in self.objectives:
            if o in ("error", "robust_error"):
                b.append((0.0, 1.0))
            else:
                b.append((0.0, float(maxima[o])))
        self.stats["hv_bounds"] = dict(zip(self.objectives, b))
        return b

    def problem(self, space, evaluator, *, method: str | None = None, worst=None) -> ArchiveProblem:
        key = make_eval_key(self.task.spec, method or self.method, evaluator.settings())
        return ArchiveProblem(space, evaluator, self.objectives, self.budget, self.archive, self.run_id,
                              method or self.method, key, worst=worst, runner=self.runner,
                              model_dir=self.model_dir if self.keep_models != "none" else None,
                              chance=self.chance, log=self.log)

    @property
    def chance(self):
        """The chance level of the target's val split (natkit/core/chance.py)."""
        from natkit.core.chance import chance_level

        return chance_level(self.task)

    def add(self, **row) -> int:
        """Archive one measured candidate of this run (chance flag and warning included): for methods
        whose loops write rows themselves."""
        from natkit.core.chance import add_checked

        return add_checked(self.archive, self.chance, self.log, run_id=self.run_id, **row)

    def eval_key(self, settings: dict, method: str | None = None) -> str:
        return make_eval_key(self.task.spec, method or self.method, settings)

    def algorithm(self, sampling=None):
        return nsga(len(self.objectives), self.pop_size, sampling=sampling, seed=self.seed)

    def minimize(self, problem, bounds, algorithm=None, generations=None):
        return run_pymoo(problem, algorithm or self.algorithm(), generations=generations or self.generations,
                         seed=self.seed, bounds=bounds)

    def log_generation(self, problem, bounds) -> float:
        return log_generation(problem, bounds)

    def save_model(self, cand_id: int, model) -> None:
        """For methods whose loops archive candidates themselves: keep the model for export/test."""
        if self.keep_models != "none":
            from natkit.nets.io import save_model

            save_model(model, self.model_dir / str(cand_id))

    # --- after the search ----------------------------------------------------------------------
    def finalize(self) -> list:
        """Report the test error of this run's front and keep only front models (unless 'all')."""
        from natkit.nets.io import load_model
        from natkit.train import evaluate

        front = self.archive.front(self.objectives, run_id=self.run_id)
        for c in front:
            d = self.model_dir / str(c.id)
            if c.test_error is None and (d / "arch.json").is_file():
                model = load_model(d)
                inp = model.natkit_input or {}
                res = evaluate(model, self.task, "test", device=self.device, resolution=inp.get("resolution"),
                               channels=inp.get("channels"))
                self.archive.set_test_error(c.id, res["error"])
        if self.keep_models == "front" and self.model_dir.is_dir():
            keep = {str(c.id) for c in self.archive.front(self.objectives, method=self.method)}
            own = {str(c.id) for c in self.archive.candidates(run_id=self.run_id)}
            for d in self.model_dir.iterdir():
                if d.name in own and d.name not in keep:
                    shutil.rmtree(d, ignore_errors=True)
        return self.archive.front(self.objectives, run_id=self.run_id)

    def write_json(self, name: str, data) -> Path:
        p = self.out_dir / name
        p.write_text(json.dumps(data, indent=2, default=str))
        return p
