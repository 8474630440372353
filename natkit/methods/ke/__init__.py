"""Knowledge Evolution (Taha, Shrivastava, Davis; CVPR 2021).

A network trained from scratch on a small target is split into a fit and a reset hypothesis (KELS,
kernel-level, or WELS, weight-level); every generation keeps the fit hypothesis, re-draws the reset one
and trains again. Under KELS the fit hypothesis is the slim network. NSGA (pymoo) searches split rate,
generations and epochs; every generation of an evaluation is archived (slim and dense rows). It trains
from scratch, so ``--space`` and ``--weights`` are rejected.

Options (``--option KEY=VALUE``; ``natkit search ke --list-options`` prints them):

- ``generations`` (int, default 10, quick 2): NSGA generations
- ``pop_size`` (int, default 20, quick 4): population size
- ``split`` (str, default 'kels'): KELS (kernel-level, slim network) or WELS (weight-level) (kels|wels)
- ``model`` (str, default 'vgg_small'): network trained from scratch
- ``rate_min`` (float, default 0.2): smallest split rate
- ``rate_max`` (float, default 0.8): largest split rate
- ``rate_step`` (float, default 0.1): split-rate step
- ``max_generations`` (int, default 5, quick 4): most KE generations of one evaluation
- ``epochs_min`` (int, default 2, quick 2): fewest epochs per generation
- ``epochs_max`` (int, default 10, quick 4): most epochs per generation
- ``val_limit`` (int | none, default None, quick 1000): cap on validation images
- ``resolution`` (int | none, default None): input resolution (default: the task's image size)
- ``slim_bn`` (str, default 'copy'): slim network's BatchNorm statistics (copy|recalibrate)
- ``lr`` (float, default 0.05): learning rate
- ``momentum`` (float, default 0.9): SGD momentum
- ``weight_decay`` (float, default 0.0005): weight decay
- ``optimizer`` (str, default 'sgd'): optimizer (sgd|adam|adamw)
- ``schedule`` (str, default 'cosine'): learning-rate schedule (cosine|constant)
- ``label_smoothing`` (float, default 0.0): label smoothing
- ``batch_size`` (int, default 32): batch size (small data: more steps per epoch)
- ``max_batches`` (int | none, default None, quick 40): cap on batches per epoch
"""
