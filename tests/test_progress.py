"""The search progress line: quiet off a terminal, fed by every archived candidate on one."""

import io

from natkit.core.archive import Archive
from natkit.core.progress import SearchProgress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_quiet_when_the_stream_is_not_a_terminal(monkeypatch):
    monkeypatch.delenv("NATKIT_PROGRESS_POSITION", raising=False)
    stream = io.StringIO()
    p = SearchProgress("width", total=3, stream=stream)
    p.record(1, "ok", {"error": 0.3})
    p.close()
    assert not p.enabled and stream.getvalue() == "" and p.done == 1 and p.best == 0.3


def test_line_shows_done_total_best_error_and_time(monkeypatch, tmp_path):
    monkeypatch.delenv("NATKIT_PROGRESS_POSITION", raising=False)
    stream = Terminal()
    p = SearchProgress("width", stream=stream)
    archive = Archive(tmp_path / "a.sqlite")
    run = archive.start_run("width", "digits", {}, 0)
    archive.observe(lambda rid, status, m: rid == run and p.record(rid, status, m))
    p.expect(4)
    archive.add(run, "width", generation=0, encoding=[1], metrics={"error": 0.5, "params": 10, "macs": 5})
    archive.add(run, "width", generation=0, encoding=[2], metrics={"error": 0.2, "params": 10, "macs": 5})
    archive.add(run, "width", generation=0, encoding=[3], metrics={"error": 0.1}, status="failed")
    archive.add(run + 1, "width", generation=0, encoding=[4], metrics={"error": 0.0})  # another run: not ours
    p.write("[width] a log line")
    text = stream.getvalue()
    p.close()
    assert p.done == 3 and p.best == 0.2  # a failed candidate's error is no best
    assert "3/4 evaluations" in text and "best val error 0.2000" in text and "a log line" in text
    assert "<" in text  # elapsed<remaining


def test_more_evaluations_than_announced_grow_the_total():
    stream = Terminal()
    p = SearchProgress("nat", total=1, stream=stream)
    for e in (0.4, 0.3):
        p.record(1, "ok", {"error": e})
    assert p._bar.total == 2
    p.close()
