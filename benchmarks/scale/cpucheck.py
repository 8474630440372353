"""Do this machine's cores add up? The same fixed work alone, then two copies at once in two processes.

Why it is here: the registered scale claims ask 2 Dask workers for >= 1.8x one worker. If two independent
processes doing the same kind of work cannot reach 1.8x on the machine at all, the claim's ceiling is the
machine, not natkit's runner. Three kinds of work, each one thread per process: a pure-Python loop (the
interpreter overhead a small-network training step is full of), a 512x512 fp32 matmul, and a 3x3 convolution
of the size natkit's small networks run. throughput_2_vs_1 = 2 x time alone / time of the pair (ideal 2.0);
best of 3 runs each.

    python -m benchmarks.scale.cpucheck          (about 1 minute; needs an idle machine)
Writes results/scale/cpu_check.{json,md}.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from pathlib import Path

from benchmarks.perf.common import stamp, write_json

ROOT = Path(__file__).resolve().parents[2]


def python_loop(_=None) -> float:
    t0, s = time.perf_counter(), 0
    for i in range(15_000_000):
        s += i * i
    return time.perf_counter() - t0


def matmul(_=None) -> float:
    import torch

    torch.set_num_threads(1)
    a = torch.randn(512, 512)
    t0 = time.perf_counter()
    for _ in range(300):
        a @ a
    return time.perf_counter() - t0


def conv(_=None) -> float:
    import torch

    torch.set_num_threads(1)
    x, c = torch.randn(64, 16, 28, 28), torch.nn.Conv2d(16, 32, 3, padding=1)
    t0 = time.perf_counter()
    with torch.no_grad():
        for _ in range(60):
            c(x)
    return time.perf_counter() - t0


WORK = {"python loop": python_loop, "matmul 512 fp32": matmul, "conv 16->32 3x3, 28 px, batch 64": conv}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "results" / "scale"))
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    t0 = time.time()
    rows = {}
    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        for name, fn in WORK.items():
            alone = [pool.apply(fn) for _ in range(args.repeats)]
            pair = [max(pool.map(fn, [0, 1])) for _ in range(args.repeats)]
            rows[name] = {"alone_s": min(alone), "pair_s": min(pair),
                          "throughput_2_vs_1": round(2 * min(alone) / min(pair), 3)}
            print(name, rows[name], flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    st = stamp(t0)
    write_json(out / "cpu_check.json", {"rows": rows, "stamp": st})
    lines = ["# Do the cores add up? The same work alone and two copies at once", "",
             "| work (1 thread per process) | alone (s) | two at once (s) | throughput 2 vs 1 (ideal 2.0) |",
             "|---|---|---|---|"]
    lines += [f"| {k} | {v['alone_s']:.3f} | {v['pair_s']:.3f} | {v['throughput_2_vs_1']:.2f}x |" for k, v in rows.items()]
    lines += ["", f"Commit {st.get('commit', '')} ; `{st.get('command', 'python -m benchmarks.scale.cpucheck')}`; "
              f"load average {st.get('load_avg')}.", ""]
    (out / "cpu_check.md").write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
