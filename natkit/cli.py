"""The `natkit` command: search, front, plot, report, export."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

from natkit.errors import ConfigError, NatkitError, scrub

class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2) like every other bad input."""

    def error(self, message):
        self.exit(2, f"natkit: error: {self.prog}: {message}\n")


def _parser() -> argparse.ArgumentParser:
    from natkit.methods import METHODS

    p = _Parser(prog="natkit", description="Find compact, task-specific CNNs: search and "
                "compress, every candidate in one Pareto archive per task.",
                epilog="exit codes: 0 done; 2 bad input or a budget no candidate can meet; "
                "3 a search whose every candidate is at chance level; 130 interrupted")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("search", help="run a method (or a reference search) on a target task",
                       description="Methods: " + "; ".join(f"{k}: {v[1]}" for k, v in METHODS.items()))
    s.add_argument("method", help=f"one of {', '.join(METHODS)}")
    s.add_argument("--task", default="digits", help="target task: fashion-mnist, digits, folder:PATH, npz:PATH, or table:NAME|PATH "
                   "(a published table as space and evaluator: nat, nsga, random; --option evaluations=N, default 100)")
    s.add_argument("--source", default="fashion-mnist", help="source task for pretraining (methods that need one)")
    s.add_argument("--out", help="run directory (required unless --list-options)")
    s.add_argument("--list-options", action="store_true", help="print the method's options (type, default, "
                   "quick value, doc) and exit")
    s.add_argument("--archive", help="task archive to write (default OUT/archive.sqlite); share it across runs")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--generations", type=int, default=None, help="search generations (an option; default: "
                   "the method's, see --list-options)")
    s.add_argument("--pop-size", type=int, default=None, help="population size (an option, like --generations)")
    s.add_argument("--objectives", default="error,macs", help="two or more of error,params,macs,latency_ms "
                   "(table tasks: error and the table's cost columns, e.g. params, flops)")
    s.add_argument("--budget", help="budget NAME (natkit/search_spaces/NAME.toml) or FILE with a [budget] table")
    s.add_argument("--space", help="search space NAME or FILE (the option 'space' of nat, lda, width, random; "
                   "other methods reject it)")
    s.add_argument("--model", help="source network (the option 'model' of the methods that compress one)")
    s.add_argument("--weights", help="source-network weights file (.safetensors or a torch state dict) instead "
                   "of natkit's own pretraining (the option 'weights' of the methods that declare it)")
    s.add_argument("--resume", action="store_true", help="continue the run in OUT without repeating evaluations")
    s.add_argument("--quick", action="store_true", help="tiny settings: about a minute per method on 2 cores "
                   "(nat: 3-4 minutes the first time, while it pretrains and caches its supernet)")
    s.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    s.add_argument("--samples-per-class", type=int, help="keep this many training images per class")
    s.add_argument("--classes", help="comma-separated class subset of the target task")
    s.add_argument("--data-root", help="folder with datasets (also $NATKIT_DATA)")
    s.add_argument("--keep-models", choices=["front", "all", "none"], default="front",
                   help="which trained candidates to keep in OUT/models for export")
    s.add_argument("--workers", type=int, default=0, help="evaluate on a local Dask cluster with N workers")
    s.add_argument("--scheduler", help="evaluate on an existing Dask cluster (scheduler address)")
    s.add_argument("--scheduler-timeout", type=float, default=10.0,
                   help="seconds to wait for --scheduler to answer (default 10)")
    s.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="method option (repeatable), typed by the method's declaration; see --list-options")
    s.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads of this process and of every evaluation (default: torch's choice for "
                        "the process, 1 per evaluation; part of the eval key, so results stay reproducible)")
    s.add_argument("-q", "--quiet", action="store_true")
    s.epilog = ("exit codes: 0 done; 2 bad input, an infeasible budget (checked before training where counts are "
                "closed-form), or every candidate failed; 3 every measured candidate is at chance level "
                "(validation error within binomial noise of the majority-class rate: nothing was learned); "
                "130 interrupted")

    for name, helptext in (("front", "print the Pareto front of an archive"),
                           ("plot", "write front and hypervolume plots (PNG)"),
                           ("report", "write summary.md, front.png and hv.png for an archive")):
        q = sub.add_parser(name, help=helptext)
        q.add_argument("dir", help="run directory or archive file")
        q.add_argument("--objectives", help="objectives of the front (default: those the run was searched with, "
                       "from run.json or the archive's newest run; else error,macs)")
        q.add_argument("--method", help="only these methods (comma-separated)")
        if name == "front":
            q.add_argument("--format", choices=["table", "json", "csv"], default="table")
        if name == "plot":
            q.add_argument("--x", help="x axis objective (default: the first searched objective besides error)")
            q.add_argument("--y", default="error", help="y axis objective")
        if name in ("plot", "report"):
            q.add_argument("--out", help="output folder (default: DIR)")

    e = sub.add_parser("export", help="write a candidate's architecture JSON and weights (+ ONNX, int8)")
    e.add_argument("dir")
    e.add_argument("--id", type=int, required=True)
    e.add_argument("--out", help="output folder (default DIR/export/ID)")
    e.add_argument("--format", choices=["safetensors", "onnx"], default="safetensors",
                   help="onnx: also model.onnx (opset 17, fixed input shape), checked by onnxruntime against "
                   "PyTorch on validation images")
    e.add_argument("--dynamic-batch", action="store_true", help="onnx: leave the batch dimension free")
    e.add_argument("--int8", action="store_true", help="onnx: also model.int8.onnx (onnxruntime static "
                   "quantization calibrated on training images), with its val/test error, size and latency")
    e.add_argument("--threads", type=int, default=1, help="onnxruntime threads for the int8 latency (default 1)")
    pr = sub.add_parser("profile", help="time the layer units natkit's spaces use with onnxruntime: a device "
                        "latency table for [hardware] table = FILE in a budget TOML")
    pr.add_argument("--out", help="latency table to write (JSON), measured on this machine")
    pr.add_argument("--write-script", metavar="FILE", help="write the standalone profiler (numpy + onnxruntime "
                    "only) to FILE for copying to the device: python FILE --out DEVICE.json")
    pr.add_argument("--spaces", default="width,nat_small,pruned",
                    help="spaces whose units to time: width, nat_small, nat_imagenet, pruned (default all but "
                    "nat_imagenet)")
    pr.add_argument("--samples", type=int, default=40, help="random networks per space (default 40)")
    pr.add_argument("--channels", type=int, default=1, help="input channels of the task (default 1)")
    pr.add_argument("--classes", type=int, default=10, help="classes of the task (default 10)")
    pr.add_argument("--resolution", type=int, default=None, help="input size in pixels of the width and pruned "
                    "networks (default: the width space's own, 28 for pruned; NAT spaces use their resolutions)")
    pr.add_argument("--threads", type=int, default=1)
    pr.add_argument("--warmup", type=int, default=5)
    pr.add_argument("--repeats", type=int, default=20)
    pr.add_argument("--seed", type=int, default=0)
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
        if args.cmd == "profile":
            from natkit.export.profile import cmd_profile

            return cmd_profile(args)
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


def _methods(arg):
    return [m.strip() for m in arg.split(",")] if arg else None


def cmd_search(args) -> int:
    from natkit.api import parse_option_items, run_search

    if args.list_options:
        from natkit.core.options import format_options
        from natkit.methods import get_method

        print(format_options(get_method(args.method).Options, args.method))
        return 0
    if not args.out:  # the options are checked first: a typo is reported with the known keys
        from natkit.api import OPTION_FLAGS, method_options

        method_options(args.method, parse_option_items(args.option), quick=args.quick,
                       flags={k: getattr(args, k) for k in OPTION_FLAGS})
        raise ConfigError("search needs --out DIR" if args.out is None else "--out must not be empty")
    res = run_search(args.method, out=args.out, task=args.task, options=parse_option_items(args.option),
                     quick=args.quick, seed=args.seed, objectives=args.objectives, budget=args.budget,
                     source=args.source, archive=args.archive, resume=args.resume, device=args.device,
                     data_root=args.data_root, samples_per_class=args.samples_per_class, classes=args.classes,
                     keep_models=args.keep_models, workers=args.workers, scheduler=args.scheduler,
                     threads=args.threads, scheduler_timeout=args.scheduler_timeout, verbose=not args.quiet, space=args.space, model=args.model,
                     weights=args.weights, generations=args.generations, pop_size=args.pop_size)
    if res.all_at_chance:
        from natkit.core.chance import EXIT_ALL_CHANCE

        n = len(res.stats["chance"]["flagged"])
        print(f"natkit: every one of the {n} measured candidates is at chance ({res.chance}): nothing was "
              f"learned; try more data, --option epochs=..., or another method (rows kept in {res.archive_path})",
              file=sys.stderr)
        return EXIT_ALL_CHANCE
    if not args.quiet:
        print(_table(res.front, res.objectives))
        print(f"{len(res.front)} on the front; run {res.run_id} in {res.archive_path}; {res.seconds:.1f} s")
    return 0


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


def _objectives(args, archive) -> list[str]:
    from natkit.core.problem import check_objectives
    from natkit.report.objectives import searched_objectives

    table = any(str(r.task).startswith("table:") for r in archive.runs())  # a table's cost columns are objectives
    if args.objectives:
        return check_objectives(args.objectives.split(","), table_costs=table)
    return check_objectives(searched_objectives(args.dir, archive, _methods(args.method)), table_costs=table)


def cmd_front(args) -> int:
    archive = _open_archive(args.dir)
    objectives = _objectives(args, archive)
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

    from natkit.core.problem import TABLE_COSTS

    axes = OBJECTIVES + ("test_error", "robust_error")
    for flag, name in (("--x", args.x), ("--y", args.y)):
        if name is not None and name not in axes and not TABLE_COSTS.match(name):
            raise ConfigError(f"unknown objective {name!r} for {flag}; choose from {', '.join(axes)}")
    if args.x == args.y:
        raise ConfigError(f"--x and --y are both {args.x!r}; choose two different objectives")
    out = _report_dir(args)
    for f in ("front.png", "hv.png"):
        check_output_file(out / f, "plot file")
    archive = _open_archive(args.dir)
    methods = _methods_in(archive, args.method)
    out.mkdir(parents=True, exist_ok=True)
    objectives = _objectives(args, archive)
    x = args.x or next((o for o in objectives if o != args.y), "macs")
    p1 = plot_front(archive, out / "front.png", x=x, y=args.y, methods=methods,
                    objectives=objectives if {x, args.y} <= set(objectives) else None)
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
    path = write_report(archive, out, methods=_methods_in(archive, args.method), objectives=_objectives(args, archive))
    print(path)
    return 0


def cmd_export(args) -> int:
    import shutil

    from natkit.core.paths import check_output_dir
    from natkit.nets.io import load_model

    if args.int8 and args.format != "onnx":
        raise ConfigError("--int8 needs --format onnx")
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
    model = load_model(src)  # proves it reloads before we hand it out
    out.mkdir(parents=True, exist_ok=True)
    for f in ("arch.json", "weights.safetensors"):
        shutil.copy(src / f, out / f)
    record = cand.to_dict()
    if args.format == "onnx":
        from natkit.export.command import export_onnx_candidate, raise_if_check_failed

        record.update(export_onnx_candidate(model, base, out, dynamic_batch=args.dynamic_batch, int8=args.int8,
                                            threads=args.threads))
    (out / "candidate.json").write_text(json.dumps(record, indent=2, default=str))
    if args.format == "onnx":
        raise_if_check_failed(record)
    print(f"{out}  (reload with natkit.nets.load_model({str(out)!r}))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
