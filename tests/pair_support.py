"""Two same-seed processes on one archive, for tests/test_shared_archive.py.

Run as ``python tests/pair_support.py METHOD WORK OPTIONS_JSON OBJECTIVES``: imports natkit and torch and
loads the task once, then forks two worker processes that run the same search (same seed, same options)
into one archive, ``WORK/archive.sqlite``, at the same time. Every evaluation is logged to a marker file
as (pid, eval_key, encoding): a callable the writer calls under its claim, and each real evaluation a
pymoo problem archives. Prints one JSON line: the workers' exit codes, the wall time, the archive's rows
and the marks.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sqlite3
import sys
import time
import traceback
from pathlib import Path


def _mark(marker: Path, eval_key: str, encoding) -> None:
    from natkit.core.records import encode_key

    with open(marker, "a") as f:  # one short appended line per evaluation: atomic between processes
        f.write(json.dumps([os.getpid(), eval_key, encode_key(encoding)]) + "\n")


def _count_evaluations(marker: Path) -> None:
    from natkit.core import problem, writer

    plain_write_row = writer.write_row

    def write_row(archive, *, eval_key, encoding, result, **kw):
        if callable(result):
            evaluate = result

            def result():
                _mark(marker, eval_key, encoding)
                return evaluate()

        return plain_write_row(archive, eval_key=eval_key, encoding=encoding, result=result, **kw)

    writer.write_row = write_row  # ArchiveWriter.write looks it up at each call
    plain_archive_result = problem.ArchiveProblem._archive_result

    def archive_result(self, encoding, res):  # called once per candidate this process evaluated
        _mark(marker, self.eval_key, encoding)
        return plain_archive_result(self, encoding, res)

    problem.ArchiveProblem._archive_result = archive_result


def _worker(k: int, method: str, work: Path, task, options: dict, objectives: list[str]) -> None:
    import importlib

    from natkit.methods.context import make_context

    try:
        os.environ["NATKIT_CACHE"] = str(work / "cache")  # one cache, as two searches of one user share it
        ctx = make_context(method, task=task, out_dir=work / f"p{k}", archive=work / "archive.sqlite", seed=0,
                           options=options, quick=True, objectives=objectives, verbose=False,
                           source_spec="digits" if method != "lda" else None)
        importlib.import_module(f"natkit.methods.{method}.method").run(ctx)
    except BaseException:
        traceback.print_exc()
        os._exit(1)


def main(argv: list[str]) -> dict:
    method, work, options, objectives = argv[0], Path(argv[1]), json.loads(argv[2]), argv[3].split(",")
    work.mkdir(parents=True, exist_ok=True)
    import torch

    torch.set_num_threads(1)
    from natkit.data import load_task

    marker = work / "marks.txt"
    _count_evaluations(marker)
    task = load_task("digits", seed=0, samples_per_class=20)
    import torch._dynamo  # noqa: F401  (imported by the first optimizer anyway: once here, not in each worker)
    # nothing has run on torch's thread pools and no archive is open yet: forking is safe, and the two
    # workers share these imports instead of paying for them twice
    fork = mp.get_context("fork")
    t0 = time.time()
    procs = [fork.Process(target=_worker, args=(k, method, work, task, options, objectives)) for k in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    seconds = time.time() - t0
    db = sqlite3.connect(work / "archive.sqlite")
    rows = db.execute("SELECT id, run_id, eval_key, encoding, status FROM candidates ORDER BY id").fetchall()
    claims = db.execute("SELECT eval_key, encoding, owner FROM claims").fetchall()
    db.close()
    marks = [json.loads(line) for line in marker.read_text().splitlines()] if marker.exists() else []
    return {"exit": [p.exitcode for p in procs], "pids": [p.pid for p in procs], "seconds": round(seconds, 1),
            "rows": rows, "marks": marks, "claims": claims}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
