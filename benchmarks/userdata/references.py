"""The two references every method is compared against on the benchmark task.

- logistic regression on raw pixels (scikit-learn), C chosen on the val split;
- a small CNN trained from scratch with natkit's training loop and its data-scaled budget
  (natkit/train/schedule.py), stated epochs chosen on the val split.
Both select on val and report test, like the methods.
"""

from __future__ import annotations

import numpy as np


def logistic_regression(task, seed: int = 0) -> dict:
    from sklearn.linear_model import LogisticRegression

    def flat(split):
        s = task.split(split)
        return s.x.reshape(len(s), -1).numpy(), s.y.numpy()

    (xtr, ytr), (xva, yva), (xte, yte) = flat("train"), flat("val"), flat("test")
    best = None
    for C in (0.01, 0.1, 1.0, 10.0):
        clf = LogisticRegression(C=C, max_iter=2000, random_state=seed).fit(xtr, ytr)
        val = 1.0 - clf.score(xva, yva)
        if best is None or val < best[0]:
            best = (val, C, 1.0 - clf.score(xte, yte))
    return {"reference": "logistic regression (raw pixels)", "val_error": best[0], "test_error": best[2],
            "selected": {"C": best[1]}}


def small_cnn(task, seed: int = 0) -> dict:
    from natkit.measure.counts import count_macs, count_params
    from natkit.nets import create_model
    from natkit.train import TrainConfig, evaluate, train
    from natkit.train.schedule import scaled
    from natkit.utils.seed import seed_everything

    res, ch = task.image_size, task.in_channels
    best = None
    for epochs in (3, 10):
        seed_everything(seed)
        model = create_model("vgg", num_classes=task.num_classes, in_channels=ch, cfg=[16, "M", 32, "M"], hidden=[64])
        train(model, task, scaled(TrainConfig(epochs=epochs, lr=0.05, batch_size=64), len(task.train)),
              resolution=res, channels=ch, seed=seed)
        val = evaluate(model, task, "val", resolution=res, channels=ch)["error"]
        if best is None or val < best[0]:
            best = (val, epochs, evaluate(model, task, "test", resolution=res, channels=ch)["error"],
                    count_params(model), count_macs(model, res, ch))
    return {"reference": "small CNN from scratch (conv16-conv32-fc64)", "val_error": best[0],
            "test_error": best[2], "selected": {"stated_epochs": best[1]}, "params": best[3], "macs": best[4]}


def chance_front_members(front, level) -> int:
    """Front members whose val error is within noise of chance, recomputed here independently of the
    archive's flag (goal: 0)."""
    return int(sum(level.at_chance(c.error) for c in front if c.error is not None and np.isfinite(c.error)))
