"""One progress line per search: evaluations done/total, best validation error, elapsed time, ETA.

Every method's candidates reach the archive through ``Archive.add``, so the line is fed from there
(an archive observer), not from each method. It is a tqdm bar on stderr, shown only when stderr is
a terminal: logs, pipes and CI stay clean.
"""

from __future__ import annotations

import os
import sys


class SearchProgress:
    def __init__(self, label: str, *, total: int | None = None, enabled: bool | None = None, stream=None,
                 position: int | None = None):
        self._stream = stream  # None: whatever sys.stderr is at each write (pytest's capture swaps it)
        stream = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = _is_terminal(stream) and os.environ.get("NATKIT_PROGRESS", "1") != "0"
        if position is None and os.environ.get("NATKIT_PROGRESS_POSITION", "").isdigit():
            position = int(os.environ["NATKIT_PROGRESS_POSITION"])  # side-by-side searches (make demo)
        self.enabled, self.done, self.best = bool(enabled), 0, None
        self._bar = None
        if self.enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=label, unit="eval", file=stream, position=position, leave=True,
                             dynamic_ncols=True, bar_format="{desc}: {n_fmt}/{total_fmt} evaluations{postfix} "
                             "[{elapsed}<{remaining}]")
            self._bar.set_postfix_str("best val error -", refresh=True)

    def expect(self, n: int) -> None:
        """``n`` more evaluations are coming (a stage, or a whole search, announces its size)."""
        if self._bar is not None:
            self._bar.total = self.done + int(n)
            self._bar.refresh()

    def record(self, run_id, status: str, metrics: dict) -> None:
        """Archive observer: one evaluated candidate of this run."""
        self.done += 1
        err = metrics.get("error")
        if status == "ok" and err is not None and (self.best is None or err < self.best):
            self.best = float(err)
        if self._bar is not None:
            if self._bar.total is not None and self.done > self._bar.total:
                self._bar.total = self.done
            self._bar.set_postfix_str(f"best val error {self.best:.4f}" if self.best is not None
                                      else "best val error -", refresh=False)
            self._bar.update(1)
            self._bar.refresh()  # evaluations take seconds: show each one at once

    def write(self, msg: str, stream=None) -> None:
        """A log line that does not tear the bar."""
        stream = stream if stream is not None else (self._stream if self._stream is not None else sys.stderr)
        if self._bar is not None:
            self._bar.write(msg, file=stream)
        else:
            print(msg, file=stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
