"""NAT's typed options (``natkit search nat --list-options``) and its space files: the supernet's
``[space]``, the ``[pretrain]`` and ``[nat]`` tables and an optional ``[budget]``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from natkit.core.config import read_toml
from natkit.core.options import Options as BaseOptions, option
from natkit.errors import ConfigError
from natkit.methods.nat.ofa_mbv3 import MBV3Config

PROPOSALS = ("surrogate", "nsga2", "random")  # how an iteration picks its k new subnets (the last two: ablations)
PRETRAIN = "pretrain_"  # options of the supernet's source pretraining (TOML table [pretrain])


@dataclass
class Options(BaseOptions):
    """The options of ``natkit search nat``: its space file's [nat] table (these names) and [pretrain] table
    (the ``pretrain_`` names), then ``--quick``, then ``--option``."""

    TOML_TABLES: ClassVar[dict] = {"nat": "", "pretrain": PRETRAIN}
    SPACE_FAMILY: ClassVar[str] = "nat_mbv3"
    WHY_NOT: ClassVar[dict] = {
        "model": "its network is a MobileNetV3-style supernet described by the space file (--space)",
        "weights": "it pretrains and caches its own supernet",
        "generations": "its search size is iterations x k real evaluations (search_generations, search_pop "
                       "size the surrogate search)",
        "pop_size": "its search size is iterations x k real evaluations (search_generations, search_pop "
                    "size the surrogate search)"}

    space: str = option("nat_small", doc="space NAME or FILE: [space] (nat_mbv3), [pretrain], [nat], [budget]")
    # --quick shortens the search, not the source pretraining: the supernet is the one full runs use (2-2.5
    # minutes on 2 CPU cores, cached after that). A shortened pretraining (300/class, 0.5 + 1 epochs, 46 s) left
    # the quick front's best val error on digits at 17% (seed 0); 0.5 + 2 epochs gave 8% on 300/class, 4.5% on 500.
    initial: int = option(16, quick=6, doc="initial archive: 2 extremes + random subnets")
    iterations: int = option(8, quick=2, doc="adapt-search iterations")
    k: int = option(6, quick=3, doc="real evaluations per iteration")
    surrogate: str = option("adaptive", quick="rbf_ensemble", doc="accuracy surrogate (a registered family)")
    search_generations: int = option(30, quick=10, doc="NSGA generations on the surrogate")
    search_pop: int = option(40, quick=20, doc="population of the surrogate search")
    warmup_epochs: float = option(2.0, quick=1.5, doc="target adaptation before the initial archive")
    adapt_epochs: float = option(1.0, quick=0.5, doc="adaptation per iteration")
    adapt_lr: float = option(0.05, doc="adaptation learning rate")
    adapt_samples: int = option(2, quick=1, doc="subnets from the per-gene distributions per step")
    reeval: str = option("all", quick="front", doc="re-evaluate all members after adaptation, or the front",
                         choices=("all", "front"))
    n_calib: int = option(256, quick=128, doc="images for BN recalibration")
    val_limit: int = option(0, doc="cap on validation images (0: all)")
    finetune_epochs: int = option(0, doc="standalone fine-tuning of the final front's subnets")
    adapt: bool = option(True, doc="adapt the supernet on the target (ablation: false)")
    use_surrogate: bool = option(True, doc="surrogate-assisted proposals (ablation: false = random)")
    proposals: str = option("surrogate", doc="how an iteration picks its new subnets: surrogate (NAT), or the "
                            "ablations nsga2 (NSGA-II offspring of the real archive) and random", choices=PROPOSALS)
    batch_size: int = option(32, doc="batch size of the adaptation")
    pretrain_samples_per_class: int = option(500, doc="source images per class of the supernet pretraining")
    pretrain_warmup_epochs: float = option(1.0, doc="largest subnet alone before the sandwich epochs")
    pretrain_epochs: float = option(2.0, doc="sandwich epochs of the supernet pretraining")
    pretrain_batch_size: int = option(64, doc="batch size of the supernet pretraining")
    pretrain_lr: float = option(0.05, doc="learning rate of the supernet pretraining")
    pretrain_n_random: int = option(2, doc="random subnets per sandwich step")
    pretrain_distill: float = option(0.5, doc="distillation weight from the largest subnet")

    def check(self) -> None:
        for key in ("initial", "k", "search_pop"):
            if getattr(self, key) < 2:
                raise ConfigError(f"option {key} must be at least 2, got {getattr(self, key)!r}")

    def val_images(self) -> int | None:
        return self.val_limit or None  # InPlaceEvaluator measures the first val_limit images

    def tables(self) -> tuple[dict, dict]:
        """(pretrain settings, nat settings) as the loop reads them."""
        d = self.to_dict()
        pre = {k[len(PRETRAIN):]: v for k, v in d.items() if k.startswith(PRETRAIN)}
        nat = {k: v for k, v in d.items() if not k.startswith(PRETRAIN) and k != "space"}
        return pre, nat


# ----------------------------------------------------------------------------------------------
# configuration


def load_nat_space(name_or_path: str = "nat_small", *, quick: bool = False, values: dict | None = None):
    """(MBV3Config, pretrain settings, nat settings, budget limits) of a space file, parsed by the one
    options parser (``values``: option overrides)."""
    from natkit.core.options import parse_options, toml_budget

    data = read_toml(name_or_path)
    opts = parse_options(Options, {**(values or {}), "space": name_or_path}, method="nat", quick=quick, toml=data)
    return (space_config(data), *opts.tables(), toml_budget(data) or {})


def space_config(data: dict) -> MBV3Config:
    from natkit.core.config import strip_descriptive

    space = strip_descriptive(dict(data.get("space", {})))
    space.pop("family", None)
    return MBV3Config.from_dict(space)
