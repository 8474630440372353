"""The `natkit` command: search, front, plot, report, export."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
from pathlib import Path

from natkit.errors import ConfigError, NatkitError, scrub

# methods that start from a source network and so can take the user's --weights instead of pretraining
WEIGHTS_METHODS = ("lda", "tascnet", "progressive")
ROBUST_METHODS = ("lda",)  # methods that measure the robust_error objective
MAX_GENERATIONS, MAX_POP_SIZE = 100_000, 10_000
_NO_WEIGHTS_WHY = {"nat": "it adapts its own weight-sharing supernet", "ke": "it trains its hypotheses from scratch",
                   "width": "it trains every candidate from scratch", "random": "it trains every candidate from scratch"}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2) like every other bad input."""

    def error(self, message):
        self.exit(2, f"natkit: error: {self.prog}: {message}\n")


def _parser() -> argparse.ArgumentParser:
    from natkit.methods import METHODS

    p = _Parser(prog="natkit", description="Find compact, task-specific CNNs: search and "
                                "compress, every candidate in one Pareto archive per task.")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("search", help="run a method (or a reference search) on a target task",
                       description="Methods: " + "; ".join(f"{k}: {v[1]}" for k, v in METHODS.items()))
    s.add_argument("method", help=f"one of {', '.join(METHODS)}")
    s.add_argument("--task", default="digits", help="target task: fashion-mnist, digits, folder:PATH, npz:PATH")
    s.add_argument("--source", default="fashion-mnist", help="source task for pretraining (methods that need one)")
    s.add_argument("--out", required=True, help="run directory")
    s.add_argument("--archive", help="task archive to write (default OUT/archive.sqlite); share it across runs")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--generations", type=int, default=10)
    s.add_argument("--pop-size", type=int, default=20)
    s.add_argument("--objectives", default="error,macs", help="two or more of error,params,macs,latency_ms")
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
    s.add_argument("--scheduler-timeout", type=float, default=10.0,
                   help="seconds to wait for --scheduler to answer (default 10)")
    s.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="method-specific setting (repeatable)")
    s.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads of this process and of every evaluation (default: torch's choice for "
                        "the process, 1 per evaluation; part of the eval key, so results stay reproducible)")
    s.add_argument("-q", "--quiet", action="store_true")

    for name, helptext in (("front", "print the Pareto front of an archive"),
                           ("plot", "write front and hypervolume plots (PNG)"),
                           ("report", "write summary.md, front.png and hv.png for an archive")):
        q = sub.add_parser(name, help=helptext)
        q.add_argument("dir", help="run directory or archive file")
        q.add_argument("--objectives", default="error,macs")
        q.add_argument("--method", help="only these methods (comma-separated)")
        if name == "front":
            q.add_argument("--format", choices=["table", "json", "csv"], default="table")
        if name == "plot":
            q.add_argument("--x", default="macs", help="x axis objective")
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
    if argv is not None:
        argv = [str(a) for a in argv]
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, one line): a code, also when called in-process
        return exc.code if isinstance(exc.code, int) else 2
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
        print(f"natkit: error: {scrub(exc)}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as exc:  # the environment (disk full, permissions) refused: still one line
        print(f"natkit: error: {scrub(f'{type(exc).__name__}: {exc}')}", file=sys.stderr)
        return 2
    except MemoryError:
        print("natkit: error: out of memory; reduce the data (--samples-per-class), the space or the population",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("natkit: interrupted; finished evaluations are in the archive (rerun with --resume)", file=sys.stderr)
        return 130
    return 0


def archive_path(d: str) -> Path:
    if not str(d).strip():
        raise ConfigError("the run directory or archive must not be empty")
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
            rel = meta.get("archive_relative")
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
            raise ConfigError(f"corrupt run.json in {p}") from None
        # the run folder's own archive first: a moved or copied folder must not read (or write) the original
        if isinstance(rel, str) and rel and (p / rel).is_file():
            return p / rel
        if stored.is_file():
            return stored
        raise ConfigError(f"archive {stored} named in {run} does not exist")
    if (p / "archive.sqlite").is_file():
        return p / "archive.sqlite"
    raise ConfigError(f"no archive in {p} (expected run.json or archive.sqlite)")


def _open_archive(d):
    """Read-only: front, plot, report and export never write to (nor switch the journal mode of) an archive."""
    from natkit.core.archive import Archive

    return Archive(archive_path(d), readonly=True)


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


def _resume_args(args, run_file: Path) -> tuple[argparse.Namespace, dict]:
    """The stored run's arguments, checked for shape: a damaged or foreign run.json is one clear error."""
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
    known = vars(args)
    for k, v in stored["args"].items():
        if k not in known:
            raise ConfigError(f"{run_file}: unknown argument {k!r}; cannot resume")
        d = known[k]
        ok = v is None or d is None or isinstance(v, type(d)) or (isinstance(d, float) and isinstance(v, int))
        if not ok or (isinstance(v, bool) and not isinstance(d, bool) and d is not None):
            raise ConfigError(f"{run_file}: argument {k} = {v!r} has the wrong type; cannot resume")
    merged = argparse.Namespace(**{**known, **stored["args"], "resume": True})
    rel = stored.get("archive_relative")
    if isinstance(rel, str) and rel and (run_file.parent / rel).is_file():
        merged.archive = str(run_file.parent / rel)  # a moved or copied run folder resumes into its own copy
    return merged, stored


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


def _validate_search(args) -> dict:
    """Everything about a search that can be wrong, checked before any work and before the archive is
    touched: a rejected search leaves no run row, no run.json and no archive file behind."""
    from natkit.core.budget import load_budget
    from natkit.core.problem import check_objectives
    from natkit.data.load import check_classes
    from natkit.errors import DataError
    from natkit.methods import get_method

    v = {"module": get_method(args.method), "objectives": check_objectives(str(args.objectives).split(",")),
         "budget": load_budget(args.budget)}
    if args.generations < 1 or args.pop_size < 2:
        raise ConfigError(f"--generations must be >= 1 and --pop-size >= 2, got --generations {args.generations} "
                          f"and --pop-size {args.pop_size}")
    if args.generations > MAX_GENERATIONS or args.pop_size > MAX_POP_SIZE:
        raise ConfigError(f"--generations must be <= {MAX_GENERATIONS:,} and --pop-size <= {MAX_POP_SIZE:,}, got "
                          f"--generations {args.generations} and --pop-size {args.pop_size}")
    cap = max(64, 4 * (os.cpu_count() or 1))  # beyond this, processes or threads only fight for the cores
    if args.workers < 0 or args.workers > cap:
        raise ConfigError(f"--workers must be an integer in 0..{cap} on this host, got {args.workers}")
    if args.threads is not None and not 1 <= args.threads <= cap:
        raise ConfigError(f"--threads must be an integer in 1..{cap} on this host, got {args.threads}")
    if "robust_error" in v["objectives"] and args.method not in ROBUST_METHODS:
        raise ConfigError(f"objective 'robust_error' is measured only by {', '.join(ROBUST_METHODS)}, not {args.method}")
    unmeasured = [k for k in v["budget"].limits if k == "latency_ms" and k not in v["objectives"]]
    if unmeasured:
        raise ConfigError(f"the budget limits {unmeasured[0]}, which is measured only when it is an objective; "
                          f"add it to --objectives")
    if not 0 <= args.seed < 2 ** 32:
        raise ConfigError(f"--seed must lie in 0..{2 ** 32 - 1}, got {args.seed}")
    if args.samples_per_class is not None and args.samples_per_class < 1:
        raise ConfigError(f"--samples-per-class must be a positive integer, got {args.samples_per_class}")
    if not args.scheduler_timeout > 0:
        raise ConfigError(f"--scheduler-timeout must be a positive number of seconds, got {args.scheduler_timeout}")
    try:
        v["classes"] = check_classes(args.classes) if args.classes is not None else None
    except DataError as exc:
        raise ConfigError(f"--classes: {exc}") from None
    options = _parse_options(args.option)
    if args.weights:
        if args.method not in WEIGHTS_METHODS:
            raise ConfigError(f"--weights does not apply to {args.method}: {_NO_WEIGHTS_WHY.get(args.method, 'no source network')} "
                              f"(--weights is for {', '.join(WEIGHTS_METHODS)})")
        from natkit.nets.io import load_state_dict_file

        load_state_dict_file(args.weights)  # a missing or corrupt file fails here, before any work
    for key in ("space", "model", "relevance", "decisions", "weights"):
        if getattr(args, key):
            options[key] = getattr(args, key)
    if args.decisions and not Path(args.decisions).is_file():
        raise ConfigError(f"decision file not found: {args.decisions}")
    v["options"] = options
    import torch

    v["device"] = check_device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return v


def _check_search_paths(args, out: Path) -> Path:
    """The run folder, its files and the archive: writable, and the archive natkit's own."""
    from natkit.core.archive import Archive, ArchiveReadOnly
    from natkit.core.paths import check_output_dir, check_output_file, file_writable

    check_output_dir(out, "run folder --out")
    for name in ("run.json", "front.csv"):
        if (out / name).exists():
            check_output_file(out / name, f"run file")
    arch_path = Path(args.archive) if args.archive else out / "archive.sqlite"
    if arch_path.exists() or arch_path.is_symlink():
        if arch_path.is_dir():
            raise ConfigError(f"--archive {arch_path} is a folder, not an archive file")
        Archive(arch_path, readonly=True).close()  # refuses a file natkit did not create, changing nothing
    why = file_writable(arch_path)
    if why:
        raise ArchiveReadOnly(f"archive {arch_path} cannot be written: {why} (front, plot and report can still "
                              f"read it; give search a writable --archive)")
    return arch_path


def cmd_search(args) -> int:
    from natkit.core.archive import Archive, package_versions
    from natkit.core.numerics import set_eval_threads
    from natkit.data import load_task
    from natkit.methods.context import RunContext

    for flag, val in (("--out", args.out), ("--archive", args.archive), ("--weights", args.weights),
                      ("--space", args.space), ("--budget", args.budget), ("--task", args.task)):
        if val is not None and not str(val).strip():
            raise ConfigError(f"{flag} must not be empty")
    out = Path(args.out)
    run_file = out / "run.json"
    stored = None
    if args.resume:
        args, stored = _resume_args(args, run_file)
    v = _validate_search(args)
    module, objectives, budget, options, device = v["module"], v["objectives"], v["budget"], v["options"], v["device"]
    arch_path = _check_search_paths(args, out)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    set_eval_threads(args.threads)
    task = load_task(args.task, root=args.data_root, seed=args.seed, samples_per_class=args.samples_per_class,
                     classes=v["classes"])
    runner, closer = _runner(args)  # an unreachable scheduler fails before the archive is touched
    try:
        out.mkdir(parents=True, exist_ok=True)
        archive = Archive(arch_path)
    except BaseException:
        closer()
        raise
    if stored:
        if not archive.has_run(stored["run_id"]):
            raise ConfigError(f"{run_file} names run {stored['run_id']}, which is not in {arch_path}; cannot resume")
        prior = archive.run(stored["run_id"])
        if prior.method != args.method:
            raise ConfigError(f"{run_file} is a {prior.method} run, not {args.method}; cannot resume")
    config = {k: val for k, val in vars(args).items() if k not in ("cmd", "resume", "quiet")}
    record = {"run_id": stored["run_id"] if stored else None, "archive": str(arch_path.resolve()),
              "archive_relative": os.path.relpath(arch_path.resolve(), out.resolve()), "method": args.method,
              "task": task.describe(), "args": config, "seed": args.seed, "options": options,
              "versions": package_versions(), "budget": budget.limits, "started": time.time()}
    if stored:
        record["resumed"] = stored.get("resumed", 0) + 1 if isinstance(stored.get("resumed", 0), int) else 1
        record["started"] = stored["started"]
        _write_atomic(run_file, json.dumps(record, indent=2, default=str))

    def start_run() -> int:  # on first use: a method that rejects its options first leaves no run behind
        record["run_id"] = archive.start_run(args.method, task.spec, config, args.seed)
        _write_atomic(run_file, json.dumps(record, indent=2, default=str))
        return record["run_id"]

    ctx = RunContext(method=args.method, task=task, archive=archive, run_id=record["run_id"], out_dir=out,
                     seed=args.seed, generations=args.generations, pop_size=args.pop_size, objectives=objectives,
                     budget=budget, quick=args.quick, device=device, options=options, resume=bool(stored),
                     source_spec=args.source, data_root=args.data_root, runner=runner,
                     keep_models=args.keep_models, verbose=not args.quiet, start_run=start_run)
    ctx.log(f"task {task.spec}: {task.source}; {task.describe()['sizes']}; device {device}")
    t0 = time.time()
    try:
        module.run(ctx)
    except BaseException:
        if ctx.started:
            archive.finish_run(ctx.run_id, "interrupted")
        raise
    finally:
        closer()
    elapsed = time.time() - t0
    run_id = ctx.run_id
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

        from natkit.core.numerics import eval_threads

        return dask_runner(workers=args.workers, scheduler=args.scheduler, threads=eval_threads(),
                           timeout=args.scheduler_timeout)
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


def _methods_in(archive, arg):
    """``--method a,b``: each name a registered method or one present in the archive."""
    if not arg:
        return None
    from natkit.methods import METHODS

    names = [m.strip() for m in str(arg).split(",")]
    present = archive.methods()
    for m in names:
        if m not in METHODS and m not in present:
            raise ConfigError(f"unknown method {m!r} in --method; choose from "
                              f"{', '.join(sorted(set(METHODS) | present))}")
    return names


def _report_dir(args) -> Path:
    from natkit.core.paths import check_output_dir

    if args.out is not None and not str(args.out).strip():
        raise ConfigError("--out must not be empty")
    out = Path(args.out or (args.dir if Path(args.dir).is_dir() else Path(args.dir).parent))
    return check_output_dir(out, "output folder --out" if args.out else "output folder")


def cmd_front(args) -> int:
    from natkit.core.problem import check_objectives

    objectives = check_objectives(args.objectives.split(","))
    archive = _open_archive(args.dir)
    front = archive.front(objectives, method=_methods_in(archive, args.method))
    if args.format == "json":
        if front:
            print(archive.to_json(front))
    elif args.format == "csv":
        print(archive.to_csv(front), end="")
    else:
        print(_table(front, objectives))
    return 0


def cmd_plot(args) -> int:
    from natkit.core.archive import OBJECTIVES
    from natkit.core.paths import check_output_file
    from natkit.report.plots import plot_front, plot_hv

    axes = OBJECTIVES + ("test_error", "robust_error")
    for flag, name in (("--x", args.x), ("--y", args.y)):
        if name not in axes:
            raise ConfigError(f"unknown objective {name!r} for {flag}; choose from {', '.join(axes)}")
    if args.x == args.y:
        raise ConfigError(f"--x and --y are both {args.x!r}; choose two different objectives")
    out = _report_dir(args)
    for f in ("front.png", "hv.png"):
        check_output_file(out / f, "plot file")
    archive = _open_archive(args.dir)
    methods = _methods_in(archive, args.method)
    out.mkdir(parents=True, exist_ok=True)
    p1 = plot_front(archive, out / "front.png", x=args.x, y=args.y, methods=methods)
    p2 = plot_hv(archive, out / "hv.png", methods=methods)
    print(p1)
    print(p2)
    return 0


def cmd_report(args) -> int:
    from natkit.core.paths import check_output_file
    from natkit.report.summary import write_report

    out = _report_dir(args)
    for f in ("front.png", "hv.png", "summary.json", "summary.md"):
        check_output_file(out / f, "report file")
    archive = _open_archive(args.dir)
    path = write_report(archive, out, methods=_methods_in(archive, args.method))
    print(path)
    return 0


def cmd_export(args) -> int:
    import shutil

    from natkit.core.paths import check_output_dir
    from natkit.nets.io import load_model

    if not 1 <= args.id < 2 ** 63:
        raise ConfigError(f"--id must be a candidate id (a positive integer), got {args.id}")
    if args.out is not None and not str(args.out).strip():
        raise ConfigError("--out must not be empty")
    archive_path(args.dir)  # a missing or empty DIR is named before anything else
    base = Path(args.dir) if Path(args.dir).is_dir() else Path(args.dir).parent
    out = check_output_dir(Path(args.out or base / "export" / str(args.id)), "export folder")
    archive = _open_archive(args.dir)
    cand = archive.get(args.id)
    src = None
    for d in [base / "models" / str(cand.id)] + list(base.glob(f"*/models/{cand.id}")):
        if (d / "arch.json").is_file():
            src = d
            break
    if src is None:
        raise NatkitError(f"candidate {cand.id} has no stored model (only front models are kept; "
                          f"rerun with --keep-models all)")
    load_model(src)  # proves it reloads before we hand it out
    out.mkdir(parents=True, exist_ok=True)
    for f in ("arch.json", "weights.safetensors"):
        shutil.copy(src / f, out / f)
    (out / "candidate.json").write_text(json.dumps(cand.to_dict(), indent=2, default=str))
    print(f"{out}  (reload with natkit.nets.load_model({str(out)!r}))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
