"""Reference search ``nsga``: plain NSGA-II/III (pymoo) over a table task's genes, no surrogate.

It runs on table tasks only (``--task table:NAME_OR_FILE``): every candidate is a lookup in the published
table (natkit.data.table), so no network is trained, pruned or exported. NSGA-II is used for up to three
objectives (``--objectives``), NSGA-III beyond. It is the peer of NAT's loop on a table (``nat --task
table:...``) and of ``random``; on a trained task the reference NSGA-II is ``width``, and this method
refuses anything but a table. ``--space``, ``--model``, ``--weights`` and ``generations`` are rejected
(a table task is a lookup).

Options (``--option KEY=VALUE``; ``natkit search nsga --list-options`` prints them):

- ``evaluations`` (int, default 100): table queries (distinct architectures) the search may make
- ``pop_size`` (int, default 20): population size of NSGA-II/III
"""
