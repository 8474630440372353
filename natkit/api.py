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
    all_at_chance: bool = False  # every measured candidate is at chance level (the CLI exits 3)
    chance: str = ""  # the chance level of the val split, described


def parse_option_items(items) -> dict:
    """``["KEY=VALUE", ...]`` -> {KEY: "VALUE"}; values stay strings until the method's types convert them."""
    out = {}
    for it in items or ():
        if "=" not in it:
            raise ConfigError(f"--option needs KEY=VALUE, got {it!r}")
        k, v = it.split("=", 1)
        out[k.strip()] = v.strip()
    return out


# methods that start from a source network and so can take the user's --weights instead of pretraining
WEIGHTS_METHODS = ("lda", "tascnet", "progressive")
ROBUST_METHODS = ("lda",)  # methods that measure the robust_error objective
MAX_GENERATIONS, MAX_POP_SIZE = 100_000, 10_000
# run.json keys of older natkit versions that resume still understands (and otherwise ignores)
_LEGACY_ARGS = {"option", "relevance", "decisions", "cmd", "quiet", "list_options", "scheduler_timeout"}


def check_device(device: str) -> str:
    """The device must exist here, checked before the first candidate is built."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cpu":
        return device
    if dev.type not in ("cuda", "mps"):  # e.g. "meta" allocates nothing and would train nothing
        raise ConfigError(f"device {device!r} cannot train candidates; use cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} requested but CUDA is not available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r}: this host has {torch.cuda.device_count()} CUDA devices")
        return device
    try:
        torch.zeros(1, device=dev)
    except Exception:
        raise ConfigError(f"device {device!r} is not available on this host") from None
    return device


def _stored_run(run_file: Path, args: dict) -> dict:
    """The stored run.json, checked for shape: a damaged or foreign one is one clear error."""
    if not run_file.is_file():
        raise ConfigError(f"nothing to resume: {run_file} does not exist")
    try:
        stored = json.loads(run_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        raise ConfigError(f"corrupt {run_file}; cannot resume") from None
    if not isinstance(stored, dict) or not isinstance(stored.get("args"), dict) or \
            isinstance(stored.get("run_id"), bool) or not isinstance(stored.get("run_id"), int) or \
            not isinstance(stored.get("started"), (int, float)):
        raise ConfigError(f"{run_file} is not a natkit run record (needs args, run_id and started); cannot resume")
    for k, v in stored["args"].items():
        if k not in args and k not in _LEGACY_ARGS:
            raise ConfigError(f"{run_file}: unknown argument {k!r}; cannot resume")
        d = args.get(k)
        ok = v is None or d is None or isinstance(v, type(d)) or (isinstance(d, float) and isinstance(v, int))
        if not ok or (isinstance(v, bool) and not isinstance(d, bool) and d is not None):
            raise ConfigError(f"{run_file}: argument {k} = {v!r} has the wrong type; cannot resume")
    return stored


def _check_numbers(a: dict, method: str, objectives, budget) -> None:
    import os as _os

    for key, lo, hi in (("generations", 1, MAX_GENERATIONS), ("pop_size", 2, MAX_POP_SIZE)):
        if a[key] is not None and not lo <= a[key] <= hi:
            raise ConfigError(f"--{key.replace('_', '-')} {a[key]} is out of range: it must lie in {lo}..{hi:,}")
    cap = max(64, 4 * (_os.cpu_count() or 1))  # beyond this, processes or threads only fight for the cores
    if not 0 <= (a["workers"] or 0) <= cap:
        raise ConfigError(f"--workers must be an integer in 0..{cap} on this host, got {a['workers']}")
    if a["threads"] is not None and not 1 <= a["threads"] <= cap:
        raise ConfigError(f"--threads must be an integer in 1..{cap} on this host, got {a['threads']}")
    if "robust_error" in objectives and method not in ROBUST_METHODS:
        raise ConfigError(f"objective 'robust_error' is measured only by {', '.join(ROBUST_METHODS)}, not {method}")
    if not 0 <= a["seed"] < 2 ** 32:
        raise ConfigError(f"--seed must lie in 0..{2 ** 32 - 1}, got {a['seed']}")
    if a["samples_per_class"] is not None and a["samples_per_class"] < 1:
        raise ConfigError(f"--samples-per-class must be a positive integer, got {a['samples_per_class']}")
    if not a["scheduler_timeout"] > 0:
        raise ConfigError(f"--scheduler-timeout must be a positive number of seconds, got {a['scheduler_timeout']}")


def _check_search_paths(out: Path, archive) -> Path:
    """The run folder, its files and the archive: writable, and the archive natkit's own."""
    from natkit.core.archive import Archive, ArchiveReadOnly
    from natkit.core.paths import check_output_dir, check_output_file, file_writable

    check_output_dir(out, "run folder --out")
    for name in ("run.json", "front.csv"):
        if (out / name).exists():
            check_output_file(out / name, "run file")
    arch_path = Path(archive) if archive else out / "archive.sqlite"
    if arch_path.exists() or arch_path.is_symlink():
        if arch_path.is_dir():
            raise ConfigError(f"--archive {arch_path} is a folder, not an archive file")
        Archive(arch_path, readonly=True).close()  # refuses a file natkit did not create, changing nothing
    why = file_writable(arch_path)
    if why:
        raise ArchiveReadOnly(f"archive {arch_path} cannot be written: {why} (front, plot and report can still "
                              f"read it; give search a writable --archive)")
    return arch_path


def run_search(method: str, *, out, task: str = "digits", options: dict | None = None, quick: bool = False,
               seed: int = 0, objectives="error,macs", budget=None, source: str = "fashion-mnist",
               archive=None, resume: bool = False, device: str | None = None, data_root: str | None = None,
               samples_per_class: int | None = None, classes=None, keep_models: str = "front", workers: int = 0,
               scheduler: str | None = None, scheduler_timeout: float = 10.0, threads: int | None = None,
               verbose: bool = True, space: str | None = None, model: str | None = None,
               weights: str | None = None, generations: int | None = None,
               pop_size: int | None = None) -> SearchResult:
    """Run ``method`` on ``task`` into the run folder ``out`` (see ``natkit search --help`` for each
    argument); ``budget`` is a NAME, a FILE, a dict of limits or None. ``resume=True`` continues the run
    in ``out`` with its recorded settings. Everything that can be wrong is checked before any work and
    before the archive is touched: a rejected search leaves no run row, no run.json and no archive file."""
    from natkit.core.archive import Archive, package_versions
    from natkit.core.budget import Budget, load_budget, load_hardware
    from natkit.core.context import RunContext
    from natkit.core.numerics import set_eval_threads
    from natkit.core.problem import check_objectives
    from natkit.data import load_task
    from natkit.data.load import check_classes
    from natkit.errors import DataError
    from natkit.methods import get_method

    for flag, val in (("--out", out), ("--archive", archive), ("--weights", weights), ("--space", space),
                      ("--budget", budget if not isinstance(budget, dict) else "x"), ("--task", task)):
        if val is not None and not str(val).strip():
            raise ConfigError(f"{flag} must not be empty")
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
        stored = _stored_run(run_file, args)
        old = dict(stored["args"])
        if "option" in old and "options" not in old:  # run.json written before typed options
            old["options"] = {**parse_option_items(old["option"]),
                              **{k: old[k] for k in ("relevance", "decisions") if old.get(k)}}
            for key, cli_default in (("generations", 10), ("pop_size", 20)):  # the old CLI's defaults were
                if old.get(key) == cli_default:                              # not choices: the method's apply
                    old[key] = None
        args.update({k: v for k, v in old.items() if k in args})
        rel = stored.get("archive_relative")
        if isinstance(rel, str) and rel and (run_file.parent / rel).is_file():
            args["archive"] = str(run_file.parent / rel)  # a moved or copied run folder resumes into its own copy
    args["scheduler_timeout"] = scheduler_timeout
    method = args["method"]
    table_task = str(args["task"]).startswith("table:")
    if table_task:  # a lookup search (natkit.tabular): the table is the space and the evaluator
        from natkit.tabular import table_options_class, table_runner

        get_method(method)  # the usual "unknown method" error first
        run_method, options_cls = table_runner(method), table_options_class(method)  # weights methods stop here
    else:
        module = get_method(method)
        if getattr(module, "TABLE_ONLY", False):
            raise ConfigError(f"method {method} runs on table tasks only (--task table:NAME|PATH)")
        run_method, options_cls = module.run, None
    objectives = check_objectives(str(args["objectives"]).split(","), table_costs=table_task)
    opts, space_budget = method_options(method, args["options"], quick=args["quick"],
                                        flags={k: args[k] for k in OPTION_FLAGS}, cls=options_cls)
    b = args["budget"]
    run_budget = Budget(dict(b)) if isinstance(b, dict) else load_budget(b)
    hardware = load_hardware(None if isinstance(b, dict) else b)  # how latency_ms is measured or predicted
    if not run_budget.n_constr and space_budget:
        run_budget = Budget(space_budget)  # the space file's [budget] is in force unless --budget says otherwise
    _check_numbers(args, method, objectives, run_budget)
    try:
        classes = check_classes(args["classes"]) if args["classes"] is not None else None
    except DataError as exc:
        raise ConfigError(f"--classes: {exc}") from None
    if getattr(opts, "weights", None):
        from natkit.nets.io import load_state_dict_file

        load_state_dict_file(opts.weights)  # a missing or corrupt file fails here, before any work
    import torch

    dev = check_device(args["device"] or ("cuda" if torch.cuda.is_available() else "cpu"))
    arch_path = _check_search_paths(out, args["archive"])
    if args["threads"]:
        torch.set_num_threads(args["threads"])
    set_eval_threads(args["threads"])
    target = load_task(args["task"], root=args["data_root"], seed=args["seed"],
                       samples_per_class=args["samples_per_class"], classes=classes)
    from natkit.measure.latency import configure

    configure(hardware)  # before the runner starts: local Dask workers inherit it
    try:
        runner, closer = _runner(args["workers"], args["scheduler"], args["scheduler_timeout"])  # fails before a run
    except BaseException:
        configure(None)
        raise
    try:
        out.mkdir(parents=True, exist_ok=True)
        arch = Archive(arch_path)
        if stored:
            if not arch.has_run(stored["run_id"]):
                raise ConfigError(f"{run_file} names run {stored['run_id']}, which is not in {arch_path}; "
                                  f"cannot resume")
            if arch.run(stored["run_id"]).method != method:
                raise ConfigError(f"{run_file} is a {arch.run(stored['run_id']).method} run, not {method}; "
                                  f"cannot resume")
    except BaseException:
        closer()
        configure(None)
        raise
    config = {**args, "option_values": opts.to_dict()}
    record = {"run_id": stored["run_id"] if stored else None, "archive": str(arch_path.resolve()),
              "archive_relative": os.path.relpath(arch_path.resolve(), out.resolve()), "method": method,
              "task": target.describe(), "args": args, "seed": args["seed"], "options": opts.to_dict(),
              "versions": package_versions(), "budget": run_budget.limits, "hardware": hardware.to_dict(),
              "started": time.time()}
    if stored:
        record["resumed"] = stored.get("resumed", 0) + 1 if isinstance(stored.get("resumed", 0), int) else 1
        record["started"] = stored["started"]
        _write_atomic(run_file, json.dumps(record, indent=2, default=str))

    def start_run() -> int:  # on first use: a method that rejects its space first leaves no run behind
        record["run_id"] = arch.start_run(method, target.spec, config, args["seed"])
        _write_atomic(run_file, json.dumps(record, indent=2, default=str))
        return record["run_id"]

    ctx = RunContext(method=method, task=target, archive=arch, run_id=record["run_id"], out_dir=out, options=opts,
                     seed=args["seed"], objectives=objectives, budget=run_budget, device=dev, resume=bool(stored),
                     source_spec=args["source"], data_root=args["data_root"], runner=runner,
                     keep_models=args["keep_models"], verbose=verbose, start_run=start_run)
    ctx.progress = _progress(method, arch, record)
    ctx.log(f"task {target.spec}: {target.source}; {target.describe()['sizes']}; device {dev}")
    if ctx.wants_latency:
        ctx.log(f"latency_ms: {hardware.describe()}")
    t0 = time.time()
    try:
        run_method(ctx)
    except BaseException:
        if ctx.started:
            arch.finish_run(ctx.run_id, "interrupted")
        raise
    finally:
        ctx.progress.close()
        closer()
        configure(None)
    elapsed = time.time() - t0
    run_id = ctx.run_id
    arch.finish_run(run_id, "done")
    from natkit.core.chance import all_at_chance, chance_summary

    if ctx.chance is not None:
        ctx.stats["chance"] = chance_summary(arch, run_id, ctx.chance, ctx.log)
    arch.checkpoint()  # the finished run's rows in archive.sqlite itself, not only in its -wal file
    record.update(stats=ctx.stats, elapsed_s=elapsed, finished=time.time())
    _write_atomic(run_file, json.dumps(record, indent=2, default=str))
    front = arch.front(objectives, run_id=run_id)
    own = arch.candidates(run_id=run_id)
    if not own:  # every candidate was read back from earlier runs with the same settings
        front = arch.front(objectives, method=method)
        ctx.log("every evaluation was already in the archive; showing the method's front over all its runs")
    _raise_if_all_failed(arch, run_id, arch_path)
    if all_at_chance(arch, run_id):
        return SearchResult(run_id, arch_path, out, [], opts, run_budget.limits, objectives, elapsed, ctx.stats,
                            all_at_chance=True, chance=ctx.chance.describe())
    if own and not arch.candidates(run_id=run_id, status="ok") and run_budget.n_constr:
        raise NatkitError(f"no candidate met the budget ({run_budget.describe()}); every evaluation is archived "
                          f"as infeasible in {arch_path}")
    (out / "front.csv").write_text(arch.to_csv(front))
    return SearchResult(run_id, arch_path, out, front, opts, run_budget.limits, objectives, elapsed, ctx.stats)


def _progress(method, archive, record):
    """The search's progress line (stderr, terminals only), fed by every candidate this run archives."""
    from natkit.core.progress import SearchProgress

    progress = SearchProgress(method)
    archive.observe(lambda rid, status, metrics: rid == record["run_id"] and progress.record(rid, status, metrics))
    return progress


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


def _runner(workers, scheduler, timeout: float = 10.0):
    if workers or scheduler:
        from natkit.core.numerics import eval_threads
        from natkit.core.parallel import dask_runner

        return dask_runner(workers=workers, scheduler=scheduler, threads=eval_threads(), timeout=timeout)
    from natkit.core.problem import SerialRunner

    return SerialRunner(), lambda: None

