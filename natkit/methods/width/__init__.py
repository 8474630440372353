"""Reference search ``width``: NSGA-II (pymoo) over a VGG's per-layer widths, each candidate trained from scratch.

Every method is compared against it. The space file (``--space``, default ``vgg_widths``) gives the
widths ([space]), the training ([train], overridden by the options below) and optionally the budget
([budget], in force unless ``--budget`` is given). It trains from scratch: ``--model``/``--weights`` are
rejected.

Options (``--option KEY=VALUE``; ``natkit search width --list-options`` prints them):

- ``generations`` (int, default 10, quick 3): NSGA-II generations (random: batches of pop_size samples)
- ``pop_size`` (int, default 20, quick 6): population size
- ``space`` (str, default 'vgg_widths'): space NAME or FILE with [space], optional [train] and [budget]
- ``epochs`` (float, default 3.0, quick 3.0): training epochs of each candidate
- ``lr`` (float, default 0.1): learning rate
- ``batch_size`` (int, default 64): batch size
- ``max_batches`` (int | none, default None): cap on batches per epoch
- ``weight_decay`` (float, default 0.0005): weight decay
- ``optimizer`` (str, default 'sgd'): optimizer (sgd|adam|adamw)
- ``label_smoothing`` (float, default 0.0): label smoothing
- ``time_limit`` (float, default 0.0): wall-time limit of the search in seconds (0: none); the search stops at
  the first generation boundary after it (pymoo's time-based termination), or after ``generations``,
  whichever comes first. The generation under way is finished and archived, so the overrun is at most one
  generation; a resumed run counts its earlier attempts' archived evaluation seconds against the limit.
"""
