"""KE's verdicts and facts (registered ``ke.*``), from the stored small_data_*.json, wels.json and search.json."""

from __future__ import annotations

from natkit.report import stats

from benchmarks.verdicts import load, pvals, update as _update, verdict

TAGS = ["N6_e3", "N5_e30", "N10_e15", "N10_e15_resnet_small"]
# (claim id, method's per-run error, baseline's per-run error) -- errors of the same seed's run
PAIRS = [("ke.dense_vs_gen1", lambda r: r["dense_error"][-1], lambda r: r["dense_error"][0]),
         ("ke.dense_vs_long", lambda r: r["dense_error"][-1], lambda r: r["dense_long_error"]),
         ("ke.slim_vs_scratch", lambda r: r["slim_error"][-1], lambda r: r["slim_scratch_error"]),
         ("ke.slim_recal_vs_scratch", lambda r: r["slim_recal_error"][-1], lambda r: r["slim_scratch_error"])]


def derive() -> list:
    out = []
    for tag in TAGS:
        src = f"results/ke/small_data_{tag}.json"
        d = load(src)
        if not d:
            continue
        st = d["settings"]
        N, e = st["generations"], st["epochs"]
        for task in sorted({r["task"] for r in d["runs"]}):
            runs = sorted((r for r in d["runs"] if r["task"] == task), key=lambda r: r["seed"])
            for cid, ours, base in PAIRS:
                p = stats.paired([100 * (1 - ours(r)) for r in runs], [100 * (1 - base(r)) for r in runs])
                out.append(verdict(
                    cid, pvals(p), key=f"{task}@{tag}", source=src, data=d, n=p.n, effect="accuracy " + p.fmt(),
                    ours=f"test error {stats.summarize([ours(r) for r in runs]).fmt(scale=100, unit='%')}",
                    baseline=f"test error {stats.summarize([base(r) for r in runs]).fmt(scale=100, unit='%')}",
                    setting=f"{task}, {st.get('model', 'vgg_small')}, KELS s={st['split_rate']}, N={N} x e={e}",
                    compute={"method": {"epochs": N * e},
                             "baselines": {"baseline": {"epochs": e if cid == "ke.dense_vs_gen1" else N * e}}},
                    plot=f"results/ke/{'generations' if 'dense' in cid else 'slim_vs_scratch'}_{tag}.png",
                    seeds=[r["seed"] for r in runs]))
        if tag in ("N10_e15", "N10_e15_resnet_small"):
            r0 = d["runs"][0]
            mc = 1 - r0["slim_cost"]["macs"] / r0["dense_cost"]["macs"]
            pc = 1 - r0["slim_cost"]["params"] / r0["dense_cost"]["params"]
            out.append(verdict("ke.slim_macs", {"macs_cut": mc, "params_cut": pc}, key=tag, source=src, data=d,
                               n=None, effect=f"slim network: MACs -{100 * mc:.0f}%, params -{100 * pc:.0f}% "
                                              f"({r0['task']}, {st.get('model', 'vgg_small')}, s={st['split_rate']})"))
    src = "results/ke/wels.json"
    d = load(src)
    if d:
        kels = [row[-1] for row in d["errors"]["kels"]]
        wels = [row[-1] for row in d["errors"]["wels"]]
        p = stats.paired([100 * (1 - x) for x in kels], [100 * (1 - x) for x in wels])
        out.append(verdict("ke.kels_vs_wels", pvals(p), source=src, data=d, n=p.n, effect="accuracy " + p.fmt(),
                           ours=f"KELS test error {stats.summarize(kels).fmt(scale=100, unit='%')}",
                           baseline=f"WELS test error {stats.summarize(wels).fmt(scale=100, unit='%')}",
                           plot="results/ke/wels.png", seeds=list(range(d["settings"]["seeds"]))))
    src = "results/ke/search.json"
    d = load(src)
    if d:
        runs = d["runs"]
        ke = [r["methods"]["ke"] for r in runs]
        width = [r["methods"]["width"] for r in runs]
        p = stats.paired([m["hv"] for m in ke], [m["hv"] for m in width])
        epochs = lambda ms: [m["train_epochs"] for m in ms]  # per seed, in the order of d["seeds"]
        out.append(verdict("ke.search_vs_width", pvals(p), source=src, data=d, n=p.n,
                           effect="HV " + p.fmt(digits=4, unit=""),
                           ours=f"KE HV {stats.summarize([m['hv'] for m in ke]).fmt(digits=4)}",
                           baseline=f"width HV {stats.summarize([m['hv'] for m in width]).fmt(digits=4)}",
                           setting=f"{d['task']}, seeds {d['seeds']}",
                           compute={"seeds": d["seeds"], "method": {"epochs": epochs(ke)},
                                    "baselines": {"width": {"epochs": epochs(width)}}},
                           plot="results/ke/search_front.png", seeds=d["seeds"]))
    return out


def update():
    return _update("ke", derive())
