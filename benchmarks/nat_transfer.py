"""Transfer: the adapted supernet vs the same search without adaptation vs the found subnets
trained from scratch for the same epochs; test error at matched MACs (source fashion-mnist,
target digits).

- NAT: warm-up adaptation, then the NAT loop with online adaptation (settings of nat_search.py).
- No adaptation: the same search on the source supernet whose backbone stays frozen; only a new
  classifier head is trained on digits, for the same warm-up epochs (the loop never adapts).
- From scratch: every subnet on NAT's final front, rebuilt with fresh weights and trained
  standalone on digits for as many epochs as NAT spent adapting (warm-up + all iterations).
Matched MACs: for each NAT front subnet, the no-adaptation front's best test error among subnets
with at most its MACs, and the scratch error of the very same architecture. About 8 minutes.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from nat_common import RESULTS, copy_net, make_ctx, target_supernet, write_result  # noqa: I001
from natkit.core.archive import nondominated
from natkit.data import load_task
from natkit.methods.nat import NATLoop, load_nat_space
from natkit.methods.nat_supernet import InPlaceEvaluator
from natkit.nets import build_from_arch
from natkit.train import TrainConfig, evaluate, train
from natkit.utils.seed import seed_everything
from nat_search import BENCH


def front_test_errors(loop, task, seed):
    """(macs, val error, test error, genome, arch) of the loop's final front, tested in place."""
    recs, X, F = loop.current(feasible_only=True)
    test_ev = InPlaceEvaluator(loop.net, loop.space, task, n_calib=loop.ev.n_calib, split="test", seed=seed)
    rows = []
    for i in nondominated(F):
        x = recs[i]["x"]
        rows.append({"genome": x, "macs": recs[i]["metrics"]["macs"], "val_error": recs[i]["metrics"]["error"],
                     "test_error": test_ev.error_of(x), "arch": loop.space.decode(x)})
    return sorted(rows, key=lambda r: r["macs"])


def run_loop(net, space, task, seed, nat, adapt):
    ctx = make_ctx(task, seed)
    ev = InPlaceEvaluator(net, space, task, n_calib=int(nat["n_calib"]), seed=seed)
    loop = NATLoop(ctx, space, net, ev, {**nat, "adapt": adapt, "warmup_epochs": 0}, ctx.budget)
    loop.run()
    return loop


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-scratch", type=int, default=6)
    args = ap.parse_args()
    seed = args.seed
    t0 = time.time()
    task = load_task("digits", seed=seed)
    warmup = float(load_nat_space("nat_small")[2]["warmup_epochs"])
    net, space, nat = target_supernet(task, seed, warmup_epochs=warmup)
    nat = {**nat, **BENCH}
    nat_loop = run_loop(copy_net(net), space, task, seed, nat, adapt=True)
    nat_rows = front_test_errors(nat_loop, task, seed)
    print(f"NAT front: {[(r['macs'], round(r['test_error'], 3)) for r in nat_rows]}")

    frozen, space_f, _ = target_supernet(task, seed, warmup_epochs=warmup, head_only=True)
    frozen_loop = run_loop(frozen, space_f, task, seed, nat, adapt=False)
    frozen_rows = front_test_errors(frozen_loop, task, seed)
    print(f"no-adaptation front: {[(r['macs'], round(r['test_error'], 3)) for r in frozen_rows]}")

    epochs = warmup + nat["iterations"] * nat["adapt_epochs"]
    picks = nat_rows if len(nat_rows) <= args.max_scratch else \
        [nat_rows[i] for i in np.linspace(0, len(nat_rows) - 1, args.max_scratch).round().astype(int)]
    scratch = []
    for r in picks:
        seed_everything(seed)
        arch = r["arch"]
        model = build_from_arch({"name": "mbv3_subnet", "kwargs": {k: v for k, v in arch.items()
                                                                    if k not in ("genome",)}})
        train(model, task, TrainConfig(epochs=epochs, lr=0.05, batch_size=int(nat["batch_size"]),
                                       label_smoothing=0.1), resolution=arch["resolution"],
              channels=arch["in_channels"], seed=seed)
        err = evaluate(model, task, "test", resolution=arch["resolution"], channels=arch["in_channels"])["error"]
        scratch.append({"macs": r["macs"], "test_error": err, "nat_test_error": r["test_error"]})
        print(f"scratch {r['macs']:.0f} MACs: {err:.3f} (NAT {r['test_error']:.3f})")

    matched = []
    for r in picks:
        cands = [f["test_error"] for f in frozen_rows if f["macs"] <= r["macs"]]
        matched.append(min(cands) if cands else None)
    both = [(r["test_error"], m) for r, m in zip(picks, matched) if m is not None]
    nat_mean = float(np.mean([r["test_error"] for r in picks]))
    scratch_mean = float(np.mean([s["test_error"] for s in scratch]))
    frozen_mean = float(np.mean([m for _, m in both])) if both else float("nan")
    nat_matched_mean = float(np.mean([a for a, _ in both])) if both else float("nan")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["macs"] / 1e6 for r in nat_rows], [r["test_error"] for r in nat_rows], "o-", label="NAT (adapted)")
    ax.plot([r["macs"] / 1e6 for r in frozen_rows], [r["test_error"] for r in frozen_rows], "s-",
            label="same search, no adaptation")
    ax.plot([s["macs"] / 1e6 for s in scratch], [s["test_error"] for s in scratch], "x", ms=9,
            label=f"NAT subnets from scratch ({epochs:g} epochs)")
    ax.set(xlabel="MMACs", ylabel="test error (digits)", title="transfer fashion-mnist -> digits")
    ax.legend()
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(RESULTS / "transfer.png", dpi=120)
    setting = (f"fashion-mnist (5k) -> digits, nat_small, seed {seed}, {len(picks)} NAT front subnets; "
               f"scratch and adaptation both {epochs:g} epochs")
    claims = [
        {"claim": "online adaptation gives lower test error at matched MACs than the same search on the "
                  "unadapted (frozen, new head) supernet",
         "setting": setting, "ours": f"NAT mean test error {nat_matched_mean:.3f}",
         "baseline": f"no adaptation {frozen_mean:.3f} (best of its front at <= MACs)",
         "holds": bool(nat_matched_mean < frozen_mean), "plot": "results/nat/transfer.png"},
        {"claim": "subnets taken from the adapted supernet beat the same architectures trained from scratch "
                  "for the same number of epochs",
         "setting": setting, "ours": f"NAT mean test error {nat_mean:.3f}",
         "baseline": f"from scratch {scratch_mean:.3f}", "holds": bool(nat_mean < scratch_mean),
         "plot": "results/nat/transfer.png"}]
    md = ["# NAT transfer (fashion-mnist -> digits)", "", "| MACs | NAT test error | no adaptation (<= MACs) | "
          "from scratch |", "|---|---|---|---|"]
    for r, m, s in zip(picks, matched, scratch):
        md.append(f"| {r['macs']:.0f} | {r['test_error']:.3f} | {'' if m is None else f'{m:.3f}'} | "
                  f"{s['test_error']:.3f} |")
    for r in nat_rows + frozen_rows:
        r.pop("arch", None)
    write_result("transfer", {"claims": claims, "nat_front": nat_rows, "no_adaptation_front": frozen_rows,
                              "scratch": scratch, "epochs": epochs, "seconds": time.time() - t0},
                 "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
