"""finalize keeps the model of every member of the run's own front, also when an earlier run in the same
archive dominates some of them (the method-wide front then differs from the run's front)."""

from __future__ import annotations

from types import SimpleNamespace

from natkit.core.archive import Archive
from natkit.methods.common import finalize


def _row(archive, run, error, macs, enc):
    cid = archive.add(run, "width", generation=0, encoding=enc, metrics={"error": error, "macs": macs, "params": 1.0},
                      status="ok", eval_key=f"k{run}")
    archive.set_test_error(cid, error)
    return cid


def test_every_member_of_the_runs_front_keeps_its_model(tmp_path):
    archive = Archive(tmp_path / "archive.sqlite")
    r1 = archive.start_run("width", "digits", {}, 0)
    best = _row(archive, r1, 0.01, 1000.0, [0])  # an earlier run's member that dominates the next two
    r2 = archive.start_run("width", "digits", {}, 1)
    mine = [_row(archive, r2, 0.02, 2000.0, [1]), _row(archive, r2, 0.03, 1500.0, [2]),
            _row(archive, r2, 0.05, 500.0, [3])]
    dominated = _row(archive, r2, 0.06, 3000.0, [4])
    models = tmp_path / "models"
    for cid in [*mine, dominated]:
        (models / str(cid)).mkdir(parents=True)
    ctx = SimpleNamespace(archive=archive, objectives=("error", "macs"), run_id=r2, model_dir=models,
                          keep_models="front", method="width", task=None, device="cpu")
    front = finalize(ctx)
    assert {c.id for c in front} == set(mine)
    assert {c.id for c in archive.front(("error", "macs"), method="width")} == {best, mine[2]}
    kept = {int(d.name) for d in models.iterdir()}
    assert kept == set(mine)  # the dominated row's model is gone, every front member's model stays
