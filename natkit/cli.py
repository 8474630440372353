"""The `natkit` command: search, front, plot, report, export."""

from __future__ import annotations

import argparse
import json
import sys
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
    s.add_argument("--task", default="digits", help="target task: fashion-mnist, digits, folder:PATH, npz:PATH")
    s.add_argument("--source", default="fashion-mnist", help="source task for pretraining (methods that need one)")
    s.add_argument("--out", help="run directory (required unless --list-options)")
    s.add_argument("--list-options", action="store_true", help="print the method's options (type, default, "
                   "quick value, doc) and exit")
    s.add_argument("--archive", help="task archive to write (default OUT/archive.sqlite); share it across runs")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--generations", type=int, default=None, help="search generations (an option; default: "
                   "the method's, see --list-options)")
    s.add_argument("--pop-size", type=int, default=None, help="population size (an option, like --generations)")
    s.add_argument("--objectives", default="error,macs", help="two or more of error,params,macs,latency_ms")
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
    s.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="method option (repeatable), typed by the method's declaration; see --list-options")
    s.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
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
        raise ConfigError("search needs --out DIR")
    res = run_search(args.method, out=args.out, task=args.task, options=parse_option_items(args.option),
                     quick=args.quick, seed=args.seed, objectives=args.objectives, budget=args.budget,
                     source=args.source, archive=args.archive, resume=args.resume, device=args.device,
                     data_root=args.data_root, samples_per_class=args.samples_per_class, classes=args.classes,
                     keep_models=args.keep_models, workers=args.workers, scheduler=args.scheduler,
                     threads=args.threads, verbose=not args.quiet, space=args.space, model=args.model,
                     weights=args.weights, generations=args.generations, pop_size=args.pop_size)
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


def cmd_front(args) -> int:
    from natkit.core.problem import check_objectives

    objectives = check_objectives(args.objectives.split(","))
    archive = _open_archive(args.dir)
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
    p1 = plot_front(archive, out / "front.png", x=args.x, y=args.y, methods=_methods(args.method))
    p2 = plot_hv(archive, out / "hv.png", methods=_methods(args.method))
    print(p1)
    print(p2)
    return 0


def cmd_report(args) -> int:
    from natkit.report.summary import write_report

    archive = _open_archive(args.dir)
    out = Path(args.out or (args.dir if Path(args.dir).is_dir() else Path(args.dir).parent))
    path = write_report(archive, out, methods=_methods(args.method))
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
