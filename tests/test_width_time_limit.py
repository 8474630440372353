"""``width``'s ``time_limit``: pymoo's time-based termination combined with the generation limit."""

import time
from pathlib import Path

import pytest

from natkit.api import run_search
from natkit.core.archive import Archive
from natkit.errors import ConfigError

TINY = str(Path(__file__).with_name("width_tiny.toml"))


def test_termination_is_whichever_comes_first():
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.callback import Callback
    from pymoo.optimize import minimize
    from pymoo.problems import get_problem

    from natkit.core.search import termination

    def generations(term) -> int:
        class Count(Callback):
            n = 0

            def notify(self, algorithm):
                Count.n += 1

        minimize(get_problem("zdt1"), NSGA2(pop_size=8), term, seed=1, callback=Count(), verbose=False)
        return Count.n

    t0 = time.time()
    assert 1 < generations(termination(10**6, 0.5)) < 10**6  # the time limit stopped it
    assert time.time() - t0 < 30
    assert generations(termination(3, 3600.0)) == 3  # the generation limit came first
    assert generations(termination(4)) == 4  # no time limit: generations only


def test_time_limit_stops_the_search_and_resume_adds_no_rows(tmp_path):
    out = tmp_path / "w"
    limit, cap = 2.0, 500
    res = run_search("width", out=out, task="digits", quick=True, space=TINY, generations=cap, pop_size=3,
                     options={"time_limit": limit}, verbose=False)
    s = res.stats
    assert s["stopped_by"] == "time_limit" and 1 <= s["generations_done"] < cap
    assert s["search_seconds"] >= limit  # it ran until the limit, then finished the generation under way
    arch = Archive(res.archive_path)
    rows = arch.candidates(run_id=res.run_id)
    # every finished evaluation is archived, in the generations the log records
    assert len(rows) == s["real_evaluations"] >= 3
    assert len(arch.generations(res.run_id)) == s["generations_done"]
    assert max(c.generation for c in rows) < s["generations_done"]
    assert res.front and all(c.test_error is not None for c in res.front)  # the front is reported on test
    arch.close()

    again = run_search("width", out=out, resume=True, verbose=False)
    arch = Archive(again.archive_path)
    assert again.run_id == res.run_id and again.stats["real_evaluations"] == 0
    assert len(arch.candidates(run_id=res.run_id)) == len(rows)
    assert {c.id for c in again.front} == {c.id for c in res.front}


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "soon"])
def test_bad_time_limit_is_a_config_error_before_any_work(tmp_path, value):
    with pytest.raises(ConfigError, match="time_limit"):
        run_search("width", out=tmp_path / "x", task="digits", quick=True, space=TINY,
                   options={"time_limit": value}, verbose=False)
    assert not (tmp_path / "x" / "archive.sqlite").exists()
