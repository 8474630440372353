"""NAT's loop state on disk, so that ``--resume`` continues after the last finished iteration.

After the initial archive and after every iteration the run directory gets, under ``nat_state/``:

- ``supernet-<iteration>.safetensors``: the adapted supernet (weights, BN buffers, the target head);
- ``state.json``: the iteration, the supernet version, the loop's numpy RNG state, its members
  (latest evaluation per genome), counters, per-iteration log (surrogate choices included), the
  hypervolume bounds and the id of the last archived row, plus a fingerprint of the settings.

Every other random number in the loop is seeded from the run seed and the iteration, so restoring
these is enough for a resumed run to replay an uninterrupted one exactly. The weights file has a
new name per iteration and ``state.json`` is replaced last (tmp + ``os.replace``), so a kill at any
moment leaves a consistent pair. Rows archived by an iteration that did not finish are read back
instead of evaluated again (same genome, same supernet version).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from natkit.core.archive import OBJECTIVES, encode_key, json_plain
from natkit.errors import ConfigError, WeightsError

STATE = "state.json"


def fingerprint(settings: dict) -> str:
    return hashlib.sha256(encode_key(settings).encode()).hexdigest()[:16]


class NATCheckpoint:
    def __init__(self, directory: Path, settings: dict):
        self.dir = Path(directory)
        self.settings = settings
        self.key = fingerprint(settings)

    # -- writing ---------------------------------------------------------------------------------
    def save(self, loop, iteration: int) -> None:
        from safetensors.torch import save_file

        self.dir.mkdir(parents=True, exist_ok=True)
        weights = f"supernet-{iteration}.safetensors"
        tmp = self.dir / (weights + ".tmp")
        save_file({k: v.detach().contiguous() for k, v in loop.net.state_dict().items()}, str(tmp))
        os.replace(tmp, self.dir / weights)
        own = loop.ctx.archive.candidates(run_id=loop.ctx.run_id)
        state = {"fingerprint": self.key, "iteration": iteration, "weights": weights,
                 "supernet_version": loop.ev.version, "rng": loop.rng.bit_generator.state,
                 "members": list(loop.members.values()), "n_new": loop.n_new, "n_real": loop.n_real,
                 "log": loop.log, "bounds": loop.bounds, "last_id": max((c.id for c in own), default=0)}
        tmp = self.dir / (STATE + ".tmp")
        tmp.write_text(json.dumps(state, default=json_plain))
        os.replace(tmp, self.dir / STATE)
        for old in self.dir.glob("supernet-*.safetensors"):  # only the newest pair is ever read
            if old.name != weights:
                old.unlink(missing_ok=True)

    # -- reading ---------------------------------------------------------------------------------
    def load(self, loop) -> int | None:
        """Restore ``loop`` from the last checkpoint; the iteration to continue after, or ``None`` when
        the run was interrupted before its first checkpoint (then it starts over, reading back what
        it had archived)."""
        path = self.dir / STATE
        own = loop.ctx.archive.candidates(run_id=loop.ctx.run_id)
        if not path.is_file():
            if any(c.generation > 0 for c in own):
                raise WeightsError(f"cannot resume NAT: checkpoint {path} is missing although the run has "
                                   f"finished iterations")
            loop.pending = _pending(own, 0)
            return None
        try:
            state = json.loads(path.read_text())
            weights = self.dir / state["weights"]
            if state["fingerprint"] != self.key:
                raise ConfigError(f"cannot resume NAT: checkpoint {path} was written with other settings")
            loop.rng.bit_generator.state = state["rng"]
            members = {encode_key(m["x"]): m for m in state["members"]}
            iteration, version = int(state["iteration"]), int(state["supernet_version"])
            last_id, log, bounds = int(state["last_id"]), list(state["log"]), [tuple(b) for b in state["bounds"]]
            n_new, n_real = int(state["n_new"]), int(state["n_real"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise WeightsError(f"cannot resume NAT: corrupt checkpoint {path} ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else 'bad content'})") from None
        if not weights.is_file():
            raise WeightsError(f"cannot resume NAT: supernet checkpoint {weights} is missing")
        _load_weights(loop.net, weights)
        loop.members, loop.n_new, loop.n_real, loop.log, loop.bounds = members, n_new, n_real, log, bounds
        loop.ev.version = version
        loop.ctx.stats["hv_bounds"] = dict(zip(loop.objectives, bounds))
        loop.pending = _pending(own, last_id)
        return iteration


def _load_weights(net, path: Path) -> None:
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
        net.load_state_dict(state)
    except Exception as exc:  # safetensors raises its own error type for a damaged file
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WeightsError(f"cannot resume NAT: supernet checkpoint {path} is corrupt or does not fit "
                           f"({first[:200]})") from None


def _pending(own, last_id: int) -> dict:
    """Rows archived after the checkpoint, by (eval_key, genome): an unfinished iteration's work."""
    out: dict = {}
    for c in own:
        if c.id > last_id and not c.extra.get("stage"):
            out.setdefault((c.eval_key, encode_key(c.encoding)), []).append(c)
    return out


def reuse(loop, key: str, x, budget) -> dict | None:
    """The archived result of ``x`` under ``key`` from the interrupted iteration, if any, as the loop's
    member record (its status before a later re-evaluation marked it stale)."""
    rows = loop.pending.get((key, encode_key(x)))
    if not rows:
        return None
    c = rows.pop(0)
    metrics = {k: c.metric(k) for k in OBJECTIVES if c.metric(k) is not None}
    status = c.status
    if status == "stale":
        status = "ok" if budget.feasible(metrics) else "infeasible"
    return {"x": x, "metrics": metrics, "id": c.id, "status": status}

