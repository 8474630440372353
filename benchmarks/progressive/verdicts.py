"""Progressive's verdicts and choices (registered ``progressive.*``), from the stored compare/criteria/bn/lr files."""

from __future__ import annotations

from natkit.report import stats

from benchmarks.verdicts import load, pvals, update as _update, verdict

TASKS = {"digits": "results/progressive", "fashion-mnist": "results/progressive/fashion-mnist"}
BASELINES = {"global_retrain": "progressive.compare.global_retrain", "one_shot": "progressive.compare.one_shot",
             "tp_l1": "progressive.compare.tp_l1"}


def _by(rows, *keys):
    return {tuple(r[k] for k in keys): r for r in rows}


def _compare(out):
    for task, d in TASKS.items():
        src = f"{d}/compare.json"
        data = load(src)
        if not data:
            continue
        rows = data["runs"]
        shares = sorted({r["share"] for r in rows})
        for share in shares:
            prog = {r["seed"]: r for r in rows if r["method"] == "progressive" and r["share"] == share}
            for meth, cid in BASELINES.items():
                base = {r["seed"]: r for r in rows if r["method"] == meth and r["share"] == share}
                seeds = sorted(set(prog) & set(base))
                if not seeds:
                    continue
                # accuracy points, progressive minus baseline
                p = stats.paired([100 * (1 - prog[s]["test_error"]) for s in seeds],
                                 [100 * (1 - base[s]["test_error"]) for s in seeds])
                same = all(prog[s]["params"] == base[s]["params"] and prog[s]["macs"] == base[s]["macs"] for s in seeds)
                ep = data["setting"]["total_epochs"]
                out.append(verdict(
                    cid, pvals(p), key=f"{task}@{share:g}", source=src, data=data, n=p.n, effect="accuracy " + p.fmt(),
                    ours=f"progressive test error {stats.summarize([prog[s]['test_error'] for s in seeds]).fmt(scale=100, unit='%')}",
                    baseline=f"{meth} test error {stats.summarize([base[s]['test_error'] for s in seeds]).fmt(scale=100, unit='%')}",
                    setting=f"vgg_small -> {task}, share {share:g} per conv layer ({prog[seeds[0]]['macs']:,} MACs; "
                            f"params/MACs identical: {same}), seeds {seeds}",
                    compute={"method": {"epochs": ep, "lr": prog[seeds[0]]["lr"]},
                             "baselines": {meth: {"epochs": ep, "lr": base[seeds[0]]["lr"]}}},
                    plot=f"{d}/compare.png"))


def _margin(rows, a_key, a, b, unit_keys=("seed", "share")):
    A = {tuple(r[k] for k in unit_keys): r for r in rows if r[a_key] == a}
    B = {tuple(r[k] for k in unit_keys): r for r in rows if r[a_key] == b}
    units = sorted(set(A) & set(B))
    return stats.paired([100 * A[u]["val_error"] for u in units], [100 * B[u]["val_error"] for u in units])


def _choices(out):
    src = "results/progressive/criteria.json"
    data = load(src)
    if data:
        rows = data["runs"]
        crits = sorted({r["criterion"] for r in rows})
        mean_val = {c: stats.summarize([r["val_error"] for r in rows if r["criterion"] == c]).mean for c in crits}
        order = sorted(crits, key=mean_val.get)
        chosen, runner = order[0], order[1]
        p = _margin(rows, "criterion", chosen, runner)
        out.append(verdict("progressive.choice.criterion", pvals(p), source=src, data=data, n=p.n,
                           effect=f"{chosen} over {runner}: val error {p.fmt()} (negative = chosen better)",
                           ours=f"{chosen}: val {100 * mean_val[chosen]:.2f}%", baseline=f"{runner}: val "
                           f"{100 * mean_val[runner]:.2f}%", note=f"made under bn_stats={data['setting'].get('bn_stats')}",
                           plot="results/progressive/criteria.png"))
    for task, d in TASKS.items():
        src = f"{d}/bn.json"
        data = load(src)
        if data:
            p = _margin(data["runs"], "bn_stats", "update", "frozen")
            out.append(verdict("progressive.choice.bn_stats", pvals(p), key=task, source=src, data=data, n=p.n,
                               effect=f"update minus frozen: val error {p.fmt()} (negative = update better)"))
        src = f"{d}/lr.json"
        data = load(src)
        if data:
            parts, values = [], {}
            for meth, lr in data["chosen"].items():
                table = data["table"][meth]
                others = sorted((v["val_error"], k) for k, v in table.items() if float(k) != float(lr))
                chosen_val = table[str(lr)]["val_error"] if str(lr) in table else table[f"{lr}"]["val_error"]
                margin = 100 * (others[0][0] - chosen_val) if others else float("nan")
                values[f"{meth}_margin"] = margin
                parts.append(f"{meth} lr {lr:g} (val {100 * chosen_val:.2f}%, {margin:+.2f} pts to lr {others[0][1]})")
            out.append(verdict("progressive.choice.lr", values, key=task, source=src, data=data, n=None,
                               effect="; ".join(parts), note=f"made under bn_stats={data['setting'].get('bn_stats')}"))


def derive() -> list:
    out = []
    _compare(out)
    _choices(out)
    return out


def update():
    return _update("progressive", derive())
