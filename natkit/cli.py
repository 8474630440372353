"""The `natkit` command: search, front, plot, report, export."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from natkit.errors import ConfigError, NatkitError


def _parser() -> argparse.ArgumentParser:
    from natkit.methods import METHODS

    p = argparse.ArgumentParser(prog="natkit", description="Find compact, task-specific CNNs: search and "
                                "compress, every candidate in one Pareto archive per task.")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("search", help="run a method (or a reference search) on a target task",
                       description="Methods: " + "; ".join(f"{k}: {v[1]}" for k, v in METHODS.items()))
    s.add_argument("method", help=f"one of {', '.join(METHODS)}")
    s.add_argument("--task", default="digits", help="target task: fashion-mnist, digits, folder:PATH, npz:PATH, or table:NAME|PATH "
                   "(a published table as space and evaluator: nat, nsga, random; --option evaluations=N, default 100)")
    s.add_argument("--source", default="fashion-mnist", help="source task for pretraining (methods that need one)")
    s.add_argument("--out", required=True, help="run directory")
    s.add_argument("--archive", help="task archive to write (default OUT/archive.sqlite); share it across runs")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--generations", type=int, default=10)
    s.add_argument("--pop-size", type=int, default=20)
    s.add_argument("--objectives", default="error,macs", help="two or more of error,params,macs,latency_ms "
                   "(table tasks: error and the table's cost columns, e.g. params, flops)")
    s.add_argument("--budget", help="budget NAME (search_spaces/NAME.toml) or FILE with a [budget] table")
    s.add_argument("--space", help="search space NAME or FILE (method-specific)")
    s.add_argument("--model", help="source network for compression methods (e.g. vgg_small, resnet_small)")
    s.add_argument("--weights", help="source-network weights file (.safetensors or a torch state dict) instead "
                   "of natkit's own pretraining")
    s.add_argument("--resume", action="store_true", help="continue the run in OUT without repeating evaluations")
    s.add_argument("--quick", action="store_true", help="tiny settings: about a minute per method on 2 cores "
                   "(nat: 3-4 minutes the first time, while it pretrains and caches its supernet)")
    s.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    s.add_argument("--samples-per-class", type=int, help="keep this many training images per class")
    s.add_argument("--classes", help="comma-separated class subset of the target task")
    s.add_argument("--data-root", help="folder with datasets (also $NATKIT_DATA)")
    s.add_argument("--keep-models", choices=["front", "all", "none"], default="front",
                   help="which trained candidates to keep in OUT/models for export")
    s.add_argument("--relevance", help="progressive: relevance criterion (or 'human')")
    s.add_argument("--decisions", help="progressive --relevance human: decision file (TOML or JSON)")
    s.add_argument("--workers", type=int, default=0, help="evaluate on a local Dask cluster with N workers")
    s.add_argument("--scheduler", help="evaluate on an existing Dask cluster (scheduler address)")
    s.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="method-specific setting (repeatable)")
    s.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    s.add_argument("-q", "--quiet", action="store_true")

    for name, helptext in (("front", "print the Pareto front of an archive"),
                           ("plot", "write front and hypervolume plots (PNG)"),
                           ("report", "write summary.md, front.png and hv.png for an archive")):
        q = sub.add_parser(name, help=helptext)
        q.add_argument("dir", help="run directory or archive file")
        q.add_argument("--objectives", default=None, help="default: those of the archive's latest run")
        q.add_argument("--method", help="only these methods (comma-separated)")
        if name == "front":
            q.add_argument("--format", choices=["table", "json", "csv"], default="table")
        if name == "plot":
            q.add_argument("--x", default=None, help="x axis objective (default: the run's second objective)")
            q.add_argument("--y", default="error", help="y axis objective")
        if name in ("plot", "report"):
            q.add_argument("--out", help="output folder (default: DIR)")

    e = sub.add_parser("export", help="write a candidate's architecture JSON and weights")
    e.add_argument("dir")
    e.add_argument("--id", type=int, required=True)
    e.add_argument("--out", help="output folder (default DIR/export/ID)")
    return p


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.cmd == "search":
            return cmd_search(args)
        if args.cmd == "front":
            return cmd_front(args)
        if args.cmd == "plot":
            return cmd_plot(args)
        if args.cmd == "report":
            return cmd_report(args)
        if args.cmd == "export":
            return cmd_export(args)
    except NatkitError as exc:
        print(f"natkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("natkit: interrupted; finished evaluations are in the archive (rerun with --resume)", file=sys.stderr)
        return 130
    return 0


def archive_path(d: str) -> Path:
    p = Path(d)
    if p.is_file():
        return p
    if not p.is_dir():
        raise ConfigError(f"no such run directory or archive: {p}")
    run = p / "run.json"
    if run.is_file():
        try:
            meta = json.loads(run.read_text())
            stored = Path(meta["archive"])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ConfigError(f"corrupt run.json in {p}") from None
        if stored.is_file():
            return stored
        rel = meta.get("archive_relative")  # the run folder was moved or cloned elsewhere
        if rel and (p / rel).is_file():
            return p / rel
        raise ConfigError(f"archive {stored} named in {run} does not exist")
    if (p / "archive.sqlite").is_file():
        return p / "archive.sqlite"
    raise ConfigError(f"no archive in {p} (expected run.json or archive.sqlite)")


def _open_archive(d):
    from natkit.core.archive import Archive

    return Archive(archive_path(d))


def _parse_options(items) -> dict:
    out = {}
    for it in items:
        if "=" not in it:
            raise ConfigError(f"--option needs KEY=VALUE, got {it!r}")
        k, v = it.split("=", 1)
        out[k.strip()] = _auto(v.strip())
    return out


def _auto(v: str):
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def _methods(arg):
    return [m.strip() for m in arg.split(",")] if arg else None


def cmd_search(args) -> int:
    from natkit.core.archive import Archive, package_versions
    from natkit.core.budget import load_budget
    from natkit.core.problem import check_objectives
    from natkit.methods import METHODS, get_method
    from natkit.methods.context import RunContext

    out = Path(args.out)
    run_file = out / "run.json"
    stored = None
    if args.resume:
        if not run_file.is_file():
            raise ConfigError(f"nothing to resume: {run_file} does not exist")
        try:
            stored = json.loads(run_file.read_text())
        except json.JSONDecodeError:
            raise ConfigError(f"corrupt {run_file}; cannot resume") from None
        args = argparse.Namespace(**{**vars(args), **stored["args"], "resume": True})
    table_task = args.task.startswith("table:")
    if table_task:  # a lookup search: neither the method's module nor torch is imported
        from natkit.tabular import table_runner

        if args.method not in METHODS:
            get_method(args.method)  # the usual "unknown method" error
        run_method = table_runner(args.method)  # methods that need weights stop here, before any work
    else:
        module = get_method(args.method)
        run_method = module.run
        if getattr(module, "TABLE_ONLY", False):
            raise ConfigError(f"method {args.method} runs on table tasks only (--task table:NAME|PATH)")
    objectives = check_objectives(args.objectives.split(","), table_costs=table_task)
    budget = load_budget(args.budget)
    if args.generations < 1 or args.pop_size < 2:
        raise ConfigError(f"--generations must be >= 1 and --pop-size >= 2, got --generations {args.generations} "
                          f"and --pop-size {args.pop_size}")
    if args.workers < 0:
        raise ConfigError(f"--workers must be a positive integer, got {args.workers}")
    options = _parse_options(args.option)
    if args.weights:
        from natkit.nets.io import load_state_dict_file

        load_state_dict_file(args.weights)  # a missing or corrupt file fails here, before any work
    for key in ("space", "model", "relevance", "decisions", "weights"):
        if getattr(args, key):
            options[key] = getattr(args, key)
    if args.decisions and not Path(args.decisions).is_file():
        raise ConfigError(f"decision file not found: {args.decisions}")
    if table_task:
        from natkit.data.table import load_table_task

        device, task = "cpu", load_table_task(args.task)
    else:
        import torch

        from natkit.data import load_task

        if args.threads:
            torch.set_num_threads(args.threads)
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} requested but CUDA is not available")
        classes = [int(c) for c in args.classes.split(",")] if args.classes else None
        task = load_task(args.task, root=args.data_root, seed=args.seed, samples_per_class=args.samples_per_class,
                         classes=classes)
    out.mkdir(parents=True, exist_ok=True)
    arch_path = Path(args.archive) if args.archive else out / "archive.sqlite"
    archive = Archive(arch_path)
    config = {k: v for k, v in vars(args).items() if k not in ("cmd", "resume", "quiet")}
    runner, closer = _runner(args)  # an unreachable scheduler fails before a run is recorded
    if stored:
        run_id = stored["run_id"]
    else:
        run_id = archive.start_run(args.method, task.spec, config, args.seed)
    record = {"run_id": run_id, "archive": str(arch_path.resolve()),
              "archive_relative": os.path.relpath(arch_path.resolve(), out.resolve()), "method": args.method, "task": task.describe(),
              "args": config, "seed": args.seed, "options": options, "versions": package_versions(),
              "budget": budget.limits, "started": time.time()}
    if stored:
        record["resumed"] = stored.get("resumed", 0) + 1
        record["started"] = stored["started"]
    _write_atomic(run_file, json.dumps(record, indent=2, default=str))
    ctx = RunContext(method=args.method, task=task, archive=archive, run_id=run_id, out_dir=out, seed=args.seed,
                     generations=args.generations, pop_size=args.pop_size, objectives=objectives, budget=budget,
                     quick=args.quick, device=device, options=options, resume=bool(stored),
                     source_spec=args.source, data_root=args.data_root, runner=runner,
                     keep_models=args.keep_models, verbose=not args.quiet)
    ctx.log(f"task {task.spec}: {task.source}; {task.describe()['sizes']}; device {device}")
    t0 = time.time()
    try:
        run_method(ctx)
    except BaseException:
        archive.finish_run(run_id, "interrupted")
        raise
    finally:
        closer()
    elapsed = time.time() - t0
    archive.finish_run(run_id, "done")
    record.update(stats=ctx.stats, elapsed_s=elapsed, finished=time.time())
    _write_atomic(run_file, json.dumps(record, indent=2, default=str))
    front = archive.front(objectives, run_id=run_id)
    own = archive.candidates(run_id=run_id)
    if not own:  # every candidate was read back from earlier runs with the same settings
        front = archive.front(objectives, method=args.method)
        ctx.log("every evaluation was already in the archive; showing the method's front over all its runs")
    _raise_if_all_failed(archive, run_id, arch_path)
    feasible_any = archive.candidates(run_id=run_id, status="ok")
    if own and not feasible_any and budget.n_constr:
        raise NatkitError(f"no candidate met the budget ({budget.describe()}); every evaluation is archived "
                          f"as infeasible in {arch_path}")
    (out / "front.csv").write_text(archive.to_csv(front))
    if not args.quiet:
        print(_table(front, objectives))
        print(f"{len(front)} on the front; run {run_id} in {arch_path}; {elapsed:.1f} s")
    return 0


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


def _runner(args):
    if args.workers or args.scheduler:
        from natkit.core.parallel import dask_runner

        return dask_runner(workers=args.workers, scheduler=args.scheduler)
    from natkit.core.problem import SerialRunner

    return SerialRunner(), lambda: None


def _table(cands, objectives) -> str:
    cols = ["id", "method", "gen"] + list(dict.fromkeys(list(objectives) + ["error", "params", "macs"])) + \
        ["test_error", "status"]
    rows = [cols]
    for c in cands:
        row = [str(c.id), c.method, str(c.generation)]
        for o in cols[3:-1]:
            v = c.metric(o)
            row.append("-" if v is None else (f"{v:.4f}" if "error" in o else f"{v:.4g}" if o == "latency_ms"
                                              else f"{int(v):,}"))
        row.append(c.status)
        rows.append(row)
    w = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    return "\n".join("  ".join(x.rjust(w[i]) for i, x in enumerate(r)) for r in rows)


def _objectives(args, archive) -> list[str]:
    """``--objectives``, else those of the archive's latest run (a table run's may be error,flops)."""
    from natkit.core.problem import check_objectives

    text = args.objectives
    if text is None:
        runs = archive.runs()
        text = (runs[-1].config.get("objectives") if runs else None) or "error,macs"
    return check_objectives(str(text).split(","), table_costs=True)  # any archive may hold a table run


def cmd_front(args) -> int:
    archive = _open_archive(args.dir)
    objectives = _objectives(args, archive)
    front = archive.front(objectives, method=_methods(args.method))
    if args.format == "json":
        if front:
            print(archive.to_json(front))
    elif args.format == "csv":
        print(archive.to_csv(front), end="")
    else:
        print(_table(front, objectives))
    return 0


def cmd_plot(args) -> int:
    from natkit.report.plots import plot_front, plot_hv

    archive = _open_archive(args.dir)
    out = Path(args.out or (args.dir if Path(args.dir).is_dir() else Path(args.dir).parent))
    out.mkdir(parents=True, exist_ok=True)
    x = args.x or next((o for o in _objectives(args, archive) if o != args.y), "macs")
    p1 = plot_front(archive, out / "front.png", x=x, y=args.y, methods=_methods(args.method))
    p2 = plot_hv(archive, out / "hv.png", methods=_methods(args.method))
    print(p1)
    print(p2)
    return 0


def cmd_report(args) -> int:
    from natkit.report.summary import write_report

    archive = _open_archive(args.dir)
    out = Path(args.out or (args.dir if Path(args.dir).is_dir() else Path(args.dir).parent))
    path = write_report(archive, out, methods=_methods(args.method), objectives=_objectives(args, archive))
    print(path)
    return 0


def cmd_export(args) -> int:
    import shutil

    from natkit.nets.io import load_model

    archive = _open_archive(args.dir)
    cand = archive.get(args.id)
    base = Path(args.dir) if Path(args.dir).is_dir() else Path(args.dir).parent
    src = None
    for d in [base / "models" / str(cand.id)] + list(base.glob(f"*/models/{cand.id}")):
        if (d / "arch.json").is_file():
            src = d
            break
    if src is None:
        raise NatkitError(f"candidate {cand.id} has no stored model (only front models are kept; "
                          f"rerun with --keep-models all)")
    load_model(src)  # proves it reloads before we hand it out
    out = Path(args.out or base / "export" / str(cand.id))
    out.mkdir(parents=True, exist_ok=True)
    for f in ("arch.json", "weights.safetensors"):
        shutil.copy(src / f, out / f)
    (out / "candidate.json").write_text(json.dumps(cand.to_dict(), indent=2, default=str))
    print(f"{out}  (reload with natkit.nets.load_model({str(out)!r}))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
