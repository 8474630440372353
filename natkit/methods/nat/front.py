"""NAT's reported front is measured on one supernet: the final one.

During the loop the supernet is adapted after every iteration, so a row's error belongs to the
supernet version it was measured on (``extra["supernet_version"]``). With ``reeval = "front"`` (the
quick setting) members off the current front are not re-measured; once the row that dominated one of
them is superseded, that old-version row could reach the final front, with no stored model and no
test error. ``settle_front`` re-evaluates, on the final supernet, every front member of another
version until the front holds only final-version rows (each re-evaluation marks the older row
``stale``), then makes sure every member has a stored model, so ``natkit export`` and the test-split
report work for all of them.
"""

from __future__ import annotations

import numpy as np

MAX_ROUNDS = 50  # each round re-measures at least one row; the archive of a run is finite


def settle_front(loop) -> dict:
    ctx, version = loop.ctx, loop.ev.version
    reevaluated = 0
    for _ in range(MAX_ROUNDS):
        old = [c for c in ctx.archive.front(loop.objectives, run_id=ctx.run_id)
               if c.extra.get("supernet_version") != version and c.extra.get("stage") != "finetuned"]
        if not old:
            break
        recs = loop.evaluate(np.array([c.encoding for c in old], dtype=int), generation=len(loop.log),
                             reevaluation=True)
        fresh = {r["id"] for r in recs}
        ctx.archive.mark_stale([c.id for c in old if c.id not in fresh],
                               "re-evaluated on the final supernet before the front was reported")
        reevaluated += len(old)
    saved = 0
    if ctx.keep_models != "none":
        for c in ctx.archive.front(loop.objectives, run_id=ctx.run_id):
            if c.extra.get("stage") == "finetuned" or (ctx.model_dir / str(c.id) / "arch.json").is_file():
                continue
            ctx.save_model(c.id, loop.ev.model([int(v) for v in c.encoding]))
            saved += 1
    if reevaluated or saved:
        ctx.log(f"front settled on supernet version {version}: {reevaluated} member(s) re-evaluated, "
                f"{saved} model(s) stored")
    return {"supernet_version": version, "reevaluated": reevaluated, "models_saved": saved}
