"""Shared set-up of the NAT benchmarks: the cached source supernet, its warm-up adaptation to the
target (cached per seed), run contexts on throw-away archives, and the claims file."""

from __future__ import annotations

import copy
import json
import os
import tempfile
from pathlib import Path

import torch

from natkit.api import make_context
from natkit.core.archive import Archive
from natkit.data import load_task
from natkit.methods.nat.method import load_nat_space
from natkit.methods.nat.space import NATSpace
from natkit.methods.nat.supernet import GeneDistribution, new_head, pretrain_supernet, train_supernet
from natkit.report.provenance import stamp
from natkit.train.pretrain import TRAINING_CODE, cache_dir, code_digest
from natkit.utils.seed import derive_seed

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results" / "nat"

torch.set_num_threads(1)


def source_supernet(space_name="nat_small", source_spec="fashion-mnist", log=print):
    config, pre, nat, _ = load_nat_space(space_name)
    source = load_task(source_spec, seed=0, samples_per_class=int(pre["samples_per_class"]))
    net = pretrain_supernet(config, source, epochs=float(pre["epochs"]), warmup_epochs=float(pre["warmup_epochs"]),
                            batch_size=int(pre["batch_size"]), lr=float(pre["lr"]), n_random=int(pre["n_random"]),
                            distill=float(pre["distill"]), seed=0, log=log)
    return net, config, pre, nat


def target_supernet(target, seed: int, *, warmup_epochs: float, space_name="nat_small", source_spec="fashion-mnist",
                    adapt_lr=None, head_only=False, log=print):
    """The source supernet with a new head, adapted to ``target`` for ``warmup_epochs`` with the
    uniform per-gene distribution (``head_only``: backbone frozen, only the classifier trained).
    Cached per seed so several benchmarks share it."""
    from safetensors.torch import load_file, save_file

    net, config, pre, nat = source_supernet(space_name, source_spec, log=log)
    new_head(net, target.num_classes, seed=seed)
    space = NATSpace(config, num_classes=target.num_classes, in_channels=net.in_channels)
    lr = float(adapt_lr if adapt_lr is not None else nat["adapt_lr"])
    key = {"src": net.natkit_source["path"], "target": target.spec, "n": len(target.train), "seed": seed,
           "warmup": warmup_epochs, "lr": lr, "head_only": head_only, "samples": nat["adapt_samples"],
           "batch_size": nat["batch_size"], "sandwich": True,
           "code": code_digest((*TRAINING_CODE, train_supernet.__module__, NATSpace.__module__), net)}
    path = cache_dir() / f"nat-target-{target.name}-{derive_seed(key):08x}.safetensors"
    if path.is_file():
        net.load_state_dict(load_file(str(path)))
    elif warmup_epochs > 0:
        frozen = []
        if head_only:
            frozen = [p for n, p in net.named_parameters() if not n.startswith("classifier")]
            for p in frozen:
                p.requires_grad_(False)
        train_supernet(net, space, target, epochs=warmup_epochs, batch_size=int(nat["batch_size"]), lr=lr,
                       sampler=GeneDistribution(space).sample, n_sampled=0 if head_only else int(nat["adapt_samples"]),
                       teacher_genome=space.extremes()[0], extra_genomes=() if head_only else (space.extremes()[1],),
                       seed=seed)
        for p in frozen:
            p.requires_grad_(True)
        tmp = path.with_suffix(".tmp")
        save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, str(tmp))
        os.replace(tmp, path)  # benchmarks running side by side never read half a file
        # rebuild from the cache: a freshly trained supernet holds views made under no_grad that
        # copy.deepcopy refuses, and every caller should get the same object either way
        return target_supernet(target, seed, warmup_epochs=warmup_epochs, space_name=space_name,
                               source_spec=source_spec, adapt_lr=adapt_lr, head_only=head_only, log=log)
    return net, space, nat


def make_ctx(task, seed, out_dir=None, objectives=("error", "macs"), **options):
    out = Path(out_dir or tempfile.mkdtemp(prefix="natbench-"))
    out.mkdir(parents=True, exist_ok=True)
    archive = Archive(out / "archive.sqlite")
    run_id = archive.start_run("nat", task.spec, {"benchmark": True}, seed)
    return make_context("nat", task=task, archive=archive, run_id=run_id, out_dir=out, seed=seed,
                        objectives=list(objectives), options=dict(options), keep_models="none", verbose=False)


def write_result(name: str, data: dict, markdown: str, started: float | None = None, **extra) -> None:
    """results/nat/<name>.json (stamped with provenance, plus ``extra`` such as ``derived_from``) and .md,
    then the NAT verdicts re-derived."""
    from benchmarks.nat import verdicts

    RESULTS.mkdir(parents=True, exist_ok=True)
    data = stamp({k: v for k, v in data.items() if k != "claims"}, started, **extra)
    tmp = RESULTS / f"{name}.json.tmp"
    tmp.write_text(json.dumps(data, indent=2, default=float))
    os.replace(tmp, RESULTS / f"{name}.json")
    (RESULTS / f"{name}.md").write_text(markdown)
    verdicts.update()


def copy_net(net):
    return copy.deepcopy(net)
