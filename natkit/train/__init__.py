"""The one training loop, evaluation, BN recalibration, and the cached source pretraining."""

from natkit.train.loop import TrainConfig, evaluate, train
from natkit.train.bn import calibration_batches, recalibrate_bn
from natkit.train.pretrain import pretrained

__all__ = ["TrainConfig", "evaluate", "train", "calibration_batches", "recalibrate_bn", "pretrained"]
