"""The contract every registered method keeps (a new method gets these checks by registering):

- an unknown option exits 2 with one line naming the known keys; ``--list-options`` lists them;
- ``--space`` is used (a missing space file is an error, an unused TOML table is an error) or rejected;
- under a tight budget every ``ok`` row meets it, or the run says that nothing was feasible;
- a quick run yields >= 1 front row with the contract keys; ``--resume`` of the finished run adds no rows;
- an exported front member reloads in a fresh process and gives the same logits.

The runs use each method's smallest settings (explicit ``--option`` values win over ``--quick``), trained
just enough that candidates leave chance level (a run whose every candidate is at chance exits 3). A
table-only method (``TABLE_ONLY``, e.g. ``nsga``) runs on ``--task table:nas-bench-macro --objectives
error,params`` under a params budget that part of the table meets; it keeps every check except the
export/reload one, since a table candidate is a lookup with no network to export.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest

from natkit.cli import main
from natkit.methods import methods

METHODS = methods.names()
BUDGET = {"macs": 2e6, "params": 30000}
# NAS-Bench-Macro's params range from 0.39M to 2.93M (median 1.63M): 1M is met by about a fifth of it
TABLE_BUDGET = {"params": 1e6}
TABLE_TASK = ["--task", "table:nas-bench-macro", "--objectives", "error,params"]

NAT_TOML = """
[space]
family = "nat_mbv3"
resolutions = [12, 16]
width_mults = [1.0]
stem_width = 4
first_block_width = 4
stage_widths = [4, 8, 8, 8, 12]
feature_mix_width = 16
divisor = 4

[pretrain]
samples_per_class = 10
warmup_epochs = 0.3
epochs = 0.3
n_random = 1
batch_size = 32
"""
WIDTH_TOML = """
[space]
family = "vgg_widths"
layers = 2
pool_after = [1, 2]
choices = [2, 4, 8]
hidden = 8
resolution = 12
"""
TINY = {  # option values that make one run of each method take seconds
    # every val image (287): on a val_limit of 60 the chance margin is that of 60 images, and this tiny
    # supernet, adapted for 0.1 epochs, stayed within it (errors 85-95%, chance 83%); 3 warm-up epochs
    # reach 62-84% against a threshold of 85.7% on 287 images
    "nat": dict(initial=3, iterations=1, k=2, search_generations=2, search_pop=4, warmup_epochs=3,
                adapt_epochs=0.5, n_calib=32, surrogate="trees"),
    "tascnet": dict(model="vgg_tiny", resolution=12, pretrain_samples=10, pretrain_epochs=1, max_batches=2, epochs=1,
                    head_epochs=1, s2_epochs=1, s2_iterations=1, s2_final_epochs=0.5, generations=1, pop_size=2,
                    s2_generations=1, s2_pop_size=2),
    "progressive": dict(model="vgg_tiny", resolution=12, source_epochs=1, source_max_batches=5, finetune_epochs=1,
                        finetune_max_batches=3, epochs=1, max_batches=2, score_images=16, max_level=2,
                        generations=1, pop_size=2, relevance="mean_abs"),
    "ke": dict(model="vgg_tiny", resolution=12, max_generations=1, epochs_min=3, epochs_max=3, lr=0.2,
               val_limit=60, generations=1, pop_size=2),
    "lda": dict(model="vgg_tiny", resolution=12, source_epochs=1, source_samples_per_class=10, transfer_epochs=3,
                finetune_epochs=1, lr=0.2, trace_images=32, schedule_rounds=1, eta_start=1.0, generations=1,
                pop_size=2),
    "width": dict(epochs=3, lr=0.2, generations=1, pop_size=2),
    "random": dict(epochs=3, lr=0.2, generations=1, pop_size=2),
    "nsga": dict(evaluations=20, pop_size=6),
}
SOURCE = {"nat": "digits"}  # NAT's tiny supernet pretrains on digits (seconds), the others on fashion-mnist


def test_every_registered_method_has_tiny_settings():
    assert set(TINY) == set(METHODS)


def _cli(argv, capsys):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    return code, [ln for ln in err.splitlines() if not ln.startswith("[")]


def _space_args(method, tmp_path, extra=""):
    from natkit.methods import options_class

    if "space" not in options_class(method).known():
        return []
    p = tmp_path / f"{method}_space.toml"
    p.write_text({"nat": NAT_TOML, "width": WIDTH_TOML, "random": WIDTH_TOML}.get(method, '[space]\nfamily = "lda"\n')
                 + extra)
    return ["--space", p]


def _table_only(method):
    return getattr(methods.get(method), "TABLE_ONLY", False)


def _task_args(method):
    """A table-only method's task; the others use the default (digits) unless the test names one."""
    return TABLE_TASK if _table_only(method) else []


def _budget(method):
    return TABLE_BUDGET if _table_only(method) else BUDGET


def _options(method):
    return [a for k, v in TINY[method].items() for a in ("--option", f"{k}={v}")]


@pytest.mark.parametrize("method", METHODS)
def test_unknown_option_exits_2_naming_the_known_keys(method, tmp_path, capsys):
    from natkit.methods import options_class

    for out in ([], ["--out", tmp_path]):  # the typo is reported before anything else, --out or not
        code, lines = _cli(["search", method, *_task_args(method), "--option", "no_such_key=1", "--quick", *out],
                           capsys)
        assert code == 2 and len(lines) == 1
        assert "no_such_key" in lines[0] and "known:" in lines[0]
        assert all(k in lines[0] for k in options_class(method).known())
    assert not (tmp_path / "run.json").exists()
    assert main(["search", method, "--list-options"]) == 0
    listed = capsys.readouterr().out
    assert all(k in listed for k in options_class(method).known())


@pytest.mark.parametrize("method", METHODS)
def test_space_is_used_or_rejected(method, tmp_path, capsys):
    from natkit.methods import options_class

    code, lines = _cli(["search", method, *_task_args(method), "--space", tmp_path / "absent.toml",
                        "--out", tmp_path / "o"], capsys)
    assert code == 2 and len(lines) == 1
    if "space" in options_class(method).known():
        assert "absent.toml" in lines[0]  # read, so a missing file is an error
        args = _space_args(method, tmp_path, extra="\n[unused_table]\nx = 1\n")
        code, lines = _cli(["search", method, *args, "--out", tmp_path / "o"], capsys)
        assert code == 2 and "[unused_table]" in lines[0] and f"not used by {method}" in lines[0]
    else:
        assert f"{method} does not use --space" in lines[0]
    assert not (tmp_path / "o" / "run.json").exists()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny quick run per method under the tight budget, run lazily and shared by the tests below."""
    done = {}

    def get(method):
        if method not in done:
            tmp = tmp_path_factory.mktemp(f"contract_{method}")
            out = tmp / "run"
            task = TABLE_TASK if _table_only(method) else [
                "--task", "digits", "--samples-per-class", "12", "--source", SOURCE.get(method, "fashion-mnist")]
            argv = ["search", method, *task, "--quick", "--out", out, "--budget", tmp / "tight.toml", "--threads",
                    "1", "--keep-models", "all", "-q", *_options(method), *_space_args(method, tmp)]
            (tmp / "tight.toml").write_text("[budget]\n" + "".join(f"{k} = {v}\n" for k, v in _budget(method).items()))
            code = main([str(a) for a in argv])
            done[method] = (code, out, argv)
        return done[method]

    return get


@pytest.mark.parametrize("method", METHODS)
def test_tight_budget_resume_front_and_export(method, runs, capsys):
    from natkit.core.archive import Archive
    from natkit.cli import archive_path

    code, out, argv = runs(method)
    err = capsys.readouterr().err
    archive = Archive(archive_path(str(out)))
    run_id = json.loads((out / "run.json").read_text())["run_id"]
    rows = archive.candidates(run_id=run_id)
    ok = [c for c in rows if c.status == "ok"]
    assert rows, "the run archived nothing"
    budget = _budget(method)
    assert json.loads((out / "run.json").read_text())["budget"] == budget
    over = [(c.id, c.macs, c.params) for c in ok if any(getattr(c, k) > v for k, v in budget.items())]
    assert not over, f"ok rows over the budget: {over}"
    if not ok:  # nothing was feasible: the run must say so
        assert code == 2 and "no candidate met the budget" in err
        return
    assert code == 0
    front = archive.front(("error", "params" if _table_only(method) else "macs"), run_id=run_id)
    assert front
    row = json.loads(archive.to_json(front[:1]))
    assert {"id", "method", "error", "params", "macs", "status"} <= set(row) and row["method"] == method
    assert row["status"] == "ok"

    n = len(archive.candidates())
    assert main([str(a) for a in ["search", method, "--out", out, "--resume", "-q"]]) == 0
    assert len(Archive(archive_path(str(out))).candidates()) == n, "resume of a finished run added rows"
    if _table_only(method):  # a table candidate is a lookup: no network to export
        return

    # NAT keeps weights only of subnets on its own front when evaluated (reeval=front leaves other members'
    # rows ok with older accuracies), so export a front member that has stored weights
    stored = [c for c in front if (out / "models" / str(c.id) / "arch.json").is_file()]
    assert stored, "no front member has stored weights"
    exp = out / "exported"
    assert main(["export", str(out), "--id", str(stored[0].id), "--out", str(exp)]) == 0
    capsys.readouterr()
    probe = ("import sys, torch\n"
             "from natkit.nets import load_model\n"
             "m = load_model(sys.argv[1]).eval()\n"
             "inp = m.natkit_input or {}\n"
             "torch.manual_seed(0)\n"
             "x = torch.randn(2, inp.get('channels', 1), inp.get('resolution', 12), inp.get('resolution', 12))\n"
             "with torch.no_grad():\n"
             "    print(repr(m(x).flatten().tolist()))\n")
    fresh = subprocess.run([sys.executable, "-c", probe, str(exp)], capture_output=True, text=True, timeout=120)
    assert fresh.returncode == 0, fresh.stderr
    import torch

    from natkit.nets import load_model

    m = load_model(exp).eval()
    inp = m.natkit_input or {}
    torch.manual_seed(0)
    x = torch.randn(2, inp.get("channels", 1), inp.get("resolution", 12), inp.get("resolution", 12))
    with torch.no_grad():
        here = m(x).flatten().tolist()
    there = ast.literal_eval(fresh.stdout.strip())
    assert len(there) == len(here) and max(abs(a - b) for a, b in zip(here, there)) < 1e-5


@pytest.mark.parametrize("method", METHODS)
def test_package_docstring_names_the_method_and_every_option(method):
    import importlib

    from natkit.methods import options_class

    doc = importlib.import_module(f"natkit.methods.{method}").__doc__ or ""
    assert len(doc.splitlines()) > 5
    missing = [k for k in options_class(method).known() if f"``{k}``" not in doc]
    assert not missing, f"natkit/methods/{method}/__init__.py does not document {missing}"
