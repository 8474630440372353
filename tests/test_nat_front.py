"""NAT's front never mixes supernet versions: old-version members are re-measured on the final one."""

from types import SimpleNamespace

from natkit.core.archive import Archive
from natkit.methods.nat.front import settle_front


class FakeLoop:
    """What settle_front uses of NATLoop: ctx, ev.version, objectives, evaluate, ev.model."""

    def __init__(self, archive, run_id, out_dir, version, remeasured):
        saved = {}
        self.ctx = SimpleNamespace(archive=archive, run_id=run_id, keep_models="front", model_dir=out_dir,
                                   log=lambda m: None, save_model=lambda cid, model: saved.setdefault(cid, model))
        self.saved = saved
        self.ev = SimpleNamespace(version=version, model=lambda x: ("model", tuple(x)))
        self.objectives, self.log, self.remeasured = ["error", "macs"], [], remeasured
        self.calls = []

    def evaluate(self, X, generation, reevaluation=False):
        out = []
        for x in X:
            x = [int(v) for v in x]
            self.calls.append(x)
            err, macs = self.remeasured[tuple(x)]
            cid = self.ctx.archive.add(self.ctx.run_id, "nat", generation=generation, encoding=x,
                                       metrics={"error": err, "params": 1, "macs": macs},
                                       extra={"supernet_version": self.ev.version, "reevaluation": True})
            out.append({"x": x, "id": cid, "status": "ok", "metrics": {"error": err, "macs": macs}})
        return out


def test_old_version_member_is_remeasured_and_leaves_the_front(tmp_path):
    archive = Archive(tmp_path / "a.sqlite")
    run = archive.start_run("nat", "t", {}, 0)
    # A: measured on supernet 0 with a low error; B: current version 2; A's re-measurement is worse
    a = archive.add(run, "nat", generation=0, encoding=[1, 1], metrics={"error": 0.1, "params": 1, "macs": 10},
                    extra={"supernet_version": 0})
    b = archive.add(run, "nat", generation=2, encoding=[2, 2], metrics={"error": 0.2, "params": 1, "macs": 5},
                    extra={"supernet_version": 2})
    assert {c.id for c in archive.front(["error", "macs"], run_id=run)} == {a, b}  # mixed versions
    loop = FakeLoop(archive, run, tmp_path / "models", 2, {(1, 1): (0.3, 10)})
    stats = settle_front(loop)
    front = archive.front(["error", "macs"], run_id=run)
    assert [c.id for c in front] == [b] and loop.calls == [[1, 1]]
    assert archive.get(a).status == "stale" and stats["reevaluated"] == 1
    assert set(loop.saved) == {b}  # every front member gets a stored model


def test_remeasured_member_that_stays_on_the_front_is_the_new_row(tmp_path):
    archive = Archive(tmp_path / "a.sqlite")
    run = archive.start_run("nat", "t", {}, 0)
    a = archive.add(run, "nat", generation=0, encoding=[1, 1], metrics={"error": 0.1, "params": 1, "macs": 10},
                    extra={"supernet_version": 0})
    loop = FakeLoop(archive, run, tmp_path / "models", 1, {(1, 1): (0.12, 10)})
    settle_front(loop)
    (only,) = archive.front(["error", "macs"], run_id=run)
    assert only.id != a and only.extra["supernet_version"] == 1 and only.id in loop.saved
