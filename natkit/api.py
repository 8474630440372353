"""The public entry point for running a method: ``natkit.run_search`` (the CLI's ``natkit search`` and
benchmarks call it; nobody builds a run's context by hand).

    from natkit import run_search
    res = run_search("tascnet", task="digits", out="runs/t", quick=True, options={"k": 1},
                     budget={"macs": 2e6})
    res.run_id, res.front, res.archive_path
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from natkit.errors import ConfigError, NatkitError
from natkit.methods.context import make_context, method_options  # noqa: F401  (part of the public API)

# CLI flags that are options of the methods that declare them (and rejected by the others)
OPTION_FLAGS = ("space", "model", "weights", "generations", "pop_size")


@dataclass(frozen=True)
class SearchResult:
    run_id: int
    archive_path: Path
    out: Path
    front: list  # Candidates of the run's front (the method's front over all runs if every row was reused)
    options: object  # the typed options in force
    budget: dict  # the budget in force (the space file's [budget] if no budget was given)
    objectives: list = field(default_factory=list)
    seconds: float = 0.0
    stats: dict = field(default_factory=dict)


def parse_option_items(items) -> dict:
    """``["KEY=VALUE", ...]`` -> {KEY: "VALUE"}; values stay strings until the method's types convert them."""
    out = {}
    for it in items or ():
        if "=" not in it:
            raise ConfigError(f"--option needs KEY=VALUE, got {it!r}")
        k, v = it.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def run_search(method: str, *, out, task: str = "digits", options: dict | None = None, quick: bool = False,
               seed: int = 0, objectives="error,macs", budget=None, source: str = "fashion-mnist",
               archive=None, resume: bool = False, device: str | None = None, data_root: str | None = None,
               samples_per_class: int | None = None, classes=None, keep_models: str = "front", workers: int = 0,
               scheduler: str | None = None, threads: int | None = None, verbose: bool = True,
               space: str | None = None, model: str | None = None, weights: str | None = None,
               generations: int | None = None, pop_size: int | None = None) -> SearchResult:
    """Run ``method`` on ``task`` into the run folder ``out`` (see ``natkit search --help`` for each
    argument); ``budget`` is a NAME, a FILE, a dict of limits or None. ``resume=True`` continues the run
    in ``out`` with its recorded settings."""
    from natkit.core.archive import Archive, package_versions
    from natkit.core.budget import Budget, load_budget
    from natkit.core.context import RunContext
    from natkit.core.problem import check_objectives
    from natkit.data import load_task
    from natkit.methods import get_method

    args = dict(method=method, task=task, options=dict(options or {}), quick=quick, seed=seed,
                objectives=objectives if isinstance(objectives, str) else ",".join(objectives),
                budget=budget, source=source, archive=str(archive) if archive else None, device=device,
                data_root=data_root, samples_per_class=samples_per_class, classes=classes, keep_models=keep_models,
                workers=workers, scheduler=scheduler, threads=threads, space=space, model=model, weights=weights,
                generations=generations, pop_size=pop_size)
    out = Path(out)
    run_file = out / "run.json"
    stored = None
    if resume:
        if not run_file.is_file():
            raise ConfigError(f"nothing to resume: {run_file} does not exist")
        try:
            stored = json.loads(run_file.read_text())
            old = dict(stored["args"])
            if "option" in old and "options" not in old:  # run.json written before typed options
                old["options"] = {**parse_option_items(old["option"]),
                                  **{k: old[k] for k in ("relevance", "decisions") if old.get(k)}}
                for key, cli_default in (("generations", 10), ("pop_size", 20)):  # the old CLI's defaults were
                    if old.get(key) == cli_default:                              # not choices: the method's apply
                        old[key] = None
            args.update({k: v for k, v in old.items() if k in args})
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ConfigError(f"corrupt {run_file}; cannot resume") from None
    module = get_method(args["method"])
    method = args["method"]
    objectives = check_objectives(args["objectives"].split(","))
    if args["workers"] and args["workers"] < 0:
        raise ConfigError(f"--workers must be a positive integer, got {args['workers']}")
    for key in ("generations", "pop_size"):
        if args[key] is not None and args[key] < (1 if key == "generations" else 2):
            raise ConfigError(f"--generations must be >= 1 and --pop-size >= 2, got --{key.replace('_', '-')} "
                              f"{args[key]}")
    opts, space_budget = method_options(method, args["options"], quick=args["quick"],
                                        flags={k: args[k] for k in OPTION_FLAGS})
    b = args["budget"]
    run_budget = Budget(dict(b)) if isinstance(b, dict) else load_budget(b)
    if not run_budget.n_constr and space_budget:
        run_budget = Budget(space_budget)  # the space file's [budget] is in force unless --budget says otherwise
    if getattr(opts, "weights", None):
        from natkit.nets.io import load_state_dict_file

        load_state_dict_file(opts.weights)  # a missing or corrupt file fails here, before any work
    import torch

    if args["threads"]:
        torch.set_num_threads(args["threads"])
    dev = args["device"] or ("cuda" if torch.cuda.is_available() else "cpu")
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {dev!r} requested but CUDA is not available")
    cls = args["classes"]
    classes = [int(c) for c in cls.split(",")] if isinstance(cls, str) else cls
    target = load_task(args["task"], root=args["data_root"], seed=args["seed"],
                       samples_per_class=args["samples_per_class"], classes=classes)
    out.mkdir(parents=True, exist_ok=True)
    arch_path = Path(args["archive"]) if args["archive"] else out / "archive.sqlite"
    arch = Archive(arch_path)
    runner, closer = _runner(args["workers"], args["scheduler"])  # an unreachable scheduler fails before a run
    config = {**args, "option_values": opts.to_dict()}
    run_id = stored["run_id"] if stored else arch.start_run(method, target.spec, config, args["seed"])
    record = {"run_id": run_id, "archive": str(arch_path.resolve()),
              "archive_relative": os.path.relpath(arch_path.resolve(), out.resolve()), "method": method,
              "task": target.describe(), "args": args, "seed": args["seed"], "options": opts.to_dict(),
              "versions": package_versions(), "budget": run_budget.limits, "started": time.time()}
    if stored:
        record["resumed"] = stored.get("resumed", 0) + 1
        record["started"] = stored["started"]
    _write_atomic(run_file, json.dumps(record, indent=2, default=str))
    ctx = RunContext(method=method, task=target, archive=arch, run_id=run_id, out_dir=out, options=opts,
                     seed=args["seed"], objectives=objectives, budget=run_budget, device=dev, resume=bool(stored),
                     source_spec=args["source"], data_root=args["data_root"], runner=runner,
                     keep_models=args["keep_models"], verbose=verbose)
    ctx.log(f"task {target.spec}: {target.source}; {target.describe()['sizes']}; device {dev}")
    t0 = time.time()
    try:
        module.run(ctx)
    except BaseException:
        arch.finish_run(run_id, "interrupted")
        raise
    finally:
        closer()
    elapsed = time.time() - t0
    arch.finish_run(run_id, "done")
    record.update(stats=ctx.stats, elapsed_s=elapsed, finished=time.time())
    _write_atomic(run_file, json.dumps(record, indent=2, default=str))
    front = arch.front(objectives, run_id=run_id)
    own = arch.candidates(run_id=run_id)
    if not own:  # every candidate was read back from earlier runs with the same settings
        front = arch.front(objectives, method=method)
        ctx.log("every evaluation was already in the archive; showing the method's front over all its runs")
    _raise_if_all_failed(arch, run_id, arch_path)
    if own and not arch.candidates(run_id=run_id, status="ok") and run_budget.n_constr:
        raise NatkitError(f"no candidate met the budget ({run_budget.describe()}); every evaluation is archived "
                          f"as infeasible in {arch_path}")
    (out / "front.csv").write_text(arch.to_csv(front))
    return SearchResult(run_id, arch_path, out, front, opts, run_budget.limits, objectives, elapsed, ctx.stats)


def _raise_if_all_failed(archive, run_id, arch_path) -> None:
    """A search whose every evaluation failed (e.g. a diverging loss) is an error, not an empty front."""
    if archive.candidates(run_id=run_id, status=("ok", "infeasible")):
        return
    failed = archive.candidates(run_id=run_id, status="failed")
    keys = {c.eval_key for c in failed}
    if failed and not any(c.eval_key in keys for c in archive.candidates(status=("ok", "infeasible"))):
        first = (failed[0].message or "no message").splitlines()[0]
        raise NatkitError(f"all {len(failed)} evaluated candidates failed, e.g. {first}; "
                          f"they are archived as failed in {arch_path}")


def _write_atomic(path: Path, text: str) -> None:
    """A SIGKILL mid-write must not leave a half run.json that --resume cannot read."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _runner(workers, scheduler):
    if workers or scheduler:
        from natkit.core.parallel import dask_runner

        return dask_runner(workers=workers, scheduler=scheduler)
    from natkit.core.problem import SerialRunner

    return SerialRunner(), lambda: None

