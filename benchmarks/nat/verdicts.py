"""NAT's verdicts (registered rules ``nat.*``), derived from the stored results/nat/*.json."""

from __future__ import annotations

from natkit.report import stats

from benchmarks.verdicts import load, pvals, update as _update, verdict

PLOT = "results/nat/{}.png"


def _counting(out):
    src = "results/nat/counting.json"
    d = load(src)
    if not d:
        return
    r = d["results"]
    eq = sum(min(v["macs_equal"], v["params_equal"]) for v in r.values())
    n = sum(v["n"] for v in r.values())
    out.append(verdict("nat.counting.exact", {"equal": eq, "checked": n}, source=src, data=d, n=None,
                       effect=f"{eq}/{n} genomes: params and MACs equal the counted conv + linear ones",
                       plot=PLOT.format("counting")))
    s = r["nat_small"]
    out.append(verdict("nat.counting.speed", {"ratio": s["speed_ratio"]}, source=src, data=d, n=None,
                       effect=f"{s['speed_ratio']:.0f}x faster (closed form {s['closed_ms_mean']:.3f} ms vs counting "
                              f"{s['counted_ms_mean']:.0f} ms per genome)", plot=PLOT.format("counting"),
                       compute={"method": {"genomes": s["n"]}, "baselines": {"count_macs": {"genomes": s["n"]}}}))


def _eval_cost(out):
    src = "results/nat/eval_cost.json"
    d = load(src)
    if not d:
        return
    sm = d["summary"]
    cold = sm.get("median_ratio_cold_cpu")
    values = {"ratio": cold} if cold is not None else {}
    effect = (f"cold {cold:.2f}x (warm {sm['median_ratio_cpu']:.2f}x)" if cold is not None else
              f"not measured cold in the stored file (warm-vs-warm {sm['median_ratio_cpu']:.2f}x is not the "
              "registered measure)")
    out.append(verdict("nat.eval_cost.cold", values, source=src, data=d, n=None, effect=effect,
                       plot=PLOT.format("eval_cost"), compute={"method": {"genomes": sm["n"]}}))


def _search(out):
    src = "results/nat/search.json"
    d = load(src)
    if not d or "paired_nat_minus" not in d:  # the stored file is the old, confounded protocol
        for cid in ("nat.search.vs_nsga2", "nat.search.vs_random"):
            out.append(verdict(cid, {}, source=src, data=d, n=0, effect="not run yet under the registered protocol",
                               note="results/nat/search.json holds no run of the equal-adaptation ablation"))
        return
    seeds = d["seeds"]
    per = d["per_seed"]
    for arm, cid in (("nsga2", "nat.search.vs_nsga2"), ("random", "nat.search.vs_random")):
        nat = [per[str(s)]["arms"]["surrogate"]["hv"][-1] for s in seeds]
        base = [per[str(s)]["arms"][arm]["hv"][-1] for s in seeds]
        p = stats.paired(nat, base)
        comp = {a: {"real_evaluations": stats.summarize([per[str(s)]["arms"][a]["real_evaluations"] for s in seeds]).mean,
                    "adapt_epochs": per[str(seeds[0])]["arms"][a]["adapt_epochs"],
                    "warmup_epochs": per[str(seeds[0])].get("warmup_epochs")} for a in ("surrogate", arm)}
        out.append(verdict(cid, pvals(p), source=src, data=d, n=p.n, effect="HV " + p.fmt(digits=4, unit=""), seeds=seeds,
                           ours=f"NAT HV {stats.summarize(nat).fmt(digits=4)}",
                           baseline=f"{arm} arm HV {stats.summarize(base).fmt(digits=4)}",
                           setting=f"fashion-mnist -> digits, nat_small, seeds {seeds}",
                           compute={"method": comp["surrogate"], "baselines": {arm: comp[arm]}},
                           plot=PLOT.format("search")))


def _surrogates(out):
    src = "results/nat/surrogates.json"
    d = load(src)
    if not d:
        return
    best = d["best_single"]
    tau = {name: [r["table"][name]["kendall"][0] for r in d["runs"]] for name in ("adaptive", best)}
    p = stats.paired(tau["adaptive"], tau[best])
    out.append(verdict("nat.surrogates.adaptive", pvals(p), source=src, data=d, n=p.n,
                       effect=f"Kendall tau {p.fmt(digits=3, unit='')}",
                       ours=f"adaptive tau {stats.summarize(tau['adaptive']).fmt(digits=3)}",
                       baseline=f"best single family over seeds ({best}) tau {stats.summarize(tau[best]).fmt(digits=3)}",
                       setting=f"digits, nat_small, seeds {d['seeds']}, {d['runs'][0]['n']} real evaluations and "
                               f"{d['runs'][0]['settings']['splits']} splits per seed",
                       compute={"method": {"real_evaluations": d["runs"][0]["n"]},
                                "baselines": {best: {"real_evaluations": d["runs"][0]["n"]}}},
                       plot=PLOT.format("surrogates"), seeds=d["seeds"]))


def _transfer(out):
    from benchmarks.nat.transfer import seed_means, val_selected_no_adaptation

    src = "results/nat/transfer.json"
    d = load(src)
    if not d:
        return
    runs = d["seeds"]
    for run in runs:
        val_selected_no_adaptation(run)
    means = [seed_means(r) for r in runs]
    seeds = [r["seed"] for r in runs]
    pairs = (("nat.transfer.adaptation", "nat_matched", "no_adaptation"), ("nat.transfer.vs_scratch", "nat", "scratch"),
             ("nat.transfer.finetune_vs_scratch", "nat_finetuned", "scratch_long"))
    for cid, ours, base in pairs:
        # accuracy points, method minus baseline: (baseline error - method error) * 100
        p = stats.paired([100 * (1 - m[ours]) for m in means], [100 * (1 - m[base]) for m in means])
        out.append(verdict(cid, pvals(p), source=src, data=d, n=p.n, effect="accuracy " + p.fmt(),
                           ours=f"test error {stats.summarize([m[ours] for m in means]).fmt(scale=100, unit='%')}",
                           baseline=f"{base} {stats.summarize([m[base] for m in means]).fmt(scale=100, unit='%')}",
                           setting=f"fashion-mnist -> digits, nat_small, seeds {seeds}", plot=PLOT.format("transfer"),
                           seeds=seeds))


def derive() -> list:
    out = []
    for part in (_counting, _eval_cost, _search, _surrogates, _transfer):
        part(out)
    return out


def update():
    return _update("nat", derive())
