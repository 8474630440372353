"""The KE small-data benchmark resumes per seed: a run stored with the same settings is not trained again."""

import argparse
import json

from benchmarks.ke import small_data as K


def _args(**kw):
    base = {"out": "x", "render": None, "tasks": "digits", "seeds": 5, "generations": 2, "epochs": 1,
            "split_rate": 0.5, "model": "vgg_small", "lr": 0.05}
    return argparse.Namespace(**{**base, **kw})


def _run(task, seed):
    return {"task": task, "seed": seed, "seconds": {"ke": 1.0}}


def test_runs_of_the_finished_and_the_partial_file_are_reused_with_their_provenance(tmp_path):
    settings = {k: v for k, v in vars(_args(seeds=3)).items() if k != "render"}
    (tmp_path / "small_data_N2_e1.json").write_text(json.dumps(
        {"settings": settings, "runs": [_run("digits", s) for s in range(3)],
         "provenance": {"commit": "render", "derived_from": "x.json", "run_provenance": {"commit": "abc"}}}))
    (tmp_path / "small_data_N2_e1.partial.json").write_text(json.dumps(
        {"settings": K._same(settings), "runs": [{**_run("digits", 3), "provenance": {"commit": "def"}}]}))
    runs = K.resume_runs(tmp_path, "N2_e1", _args(seeds=5), lambda m: None)
    assert sorted(r["seed"] for r in runs) == [0, 1, 2, 3]
    assert {r["seed"]: r["provenance"]["commit"] for r in runs} == {0: "abc", 1: "abc", 2: "abc", 3: "def"}


def test_runs_stored_with_other_settings_are_not_reused(tmp_path):
    settings = {k: v for k, v in vars(_args(lr=0.1)).items() if k != "render"}
    (tmp_path / "small_data_N2_e1.json").write_text(json.dumps({"settings": settings, "runs": [_run("digits", 0)]}))
    said = []
    assert K.resume_runs(tmp_path, "N2_e1", _args(), said.append) == []
    assert "other settings" in said[0]
