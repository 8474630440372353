"""TASCNet (Tula et al., 2022, Target Aware Network Architecture Search and Compression): the deeper layers searched, then similar filters compressed.

Stage 1 rebuilds the last k meaningful layers of a source-pretrained CNN with searched widths, kernels and
dropout on its frozen trunk (k fixed or grown as AutoTune does) and trains them on the target; NSGA-II
(pymoo) gives a front over the run's objectives. Stage 2 fine-tunes a chosen stage-1 network while
recording its filters' weight trajectories and removes the smaller-L1 filter of the most similar pairs
(Torch-Pruning), repeating while validation accuracy stays within a tolerance; its per-layer shares and
tolerance are a second pymoo problem. It has no space file: ``--space`` is rejected.

Options (``--option KEY=VALUE``; ``natkit search tascnet --list-options`` prints them):

- ``generations`` (int, default 10, quick 2): NSGA-II generations of stage 1 (and of stage 2 unless s2_generations)
- ``pop_size`` (int, default 20, quick 4): population of stage 1 (and of stage 2 unless s2_pop_size)
- ``model`` (str, default 'vgg_small'): source network
- ``weights`` (str | none, default None): source weights file (safetensors / state dict) instead of pretraining
- ``resolution`` (int | none, default None): input resolution (default: the source task's image size)
- ``pretrain_epochs`` (float, default 3.0, quick 3.0): source pretraining epochs (cached)
- ``pretrain_samples`` (int | none, default 1000, quick 500): source images per class
- ``source_val_fraction`` (float | none, default None, quick 0.05): share of the source train split held out for validation (default: the loader's)
- ``head_epochs`` (float, default 2.0, quick 2.0): training of the new head (head-only transfer)
- ``k`` (str, default 'auto', quick '1'): rebuilt deeper layers: an int, or auto (grow while val accuracy improves)
- ``k_max`` (int, default 4): largest k under auto
- ``kernels`` (str, default '1,3,5'): kernel-size domain of rebuilt conv layers (1,3,5|2,3,5)
- ``epochs`` (float, default 3.0, quick 2.0): E: stage-1 training of each candidate
- ``lr`` (float, default 0.05): stage-1 learning rate
- ``finetune_lr`` (float, default 0.01): stage-2 fine-tuning learning rate
- ``batch_size`` (int, default 64): batch size
- ``max_batches`` (int | none, default None, quick 100): cap on batches per epoch
- ``choose`` (str, default 'knee'): stage-2 parent: knee | best | a candidate id
- ``s2_epochs`` (int, default 2, quick 2): fine-tuning epochs per stage-2 iteration (trajectory length)
- ``s2_iterations`` (int, default 4, quick 2): stage-2 prune/fine-tune iterations
- ``s2_final_epochs`` (float, default 2.0, quick 1.0): closing fine-tune (cosine) of the kept network
- ``s2_generations`` (int | none, default None, quick 1): stage-2 generations (default: generations)
- ``s2_pop_size`` (int | none, default None, quick 3): stage-2 population (default: pop_size)
- ``min_filters`` (int | none, default None): layers with at most this many filters are left alone
- ``pull_weight`` (float, default 0.0): lambda of CE + lambda * exp(-sum cos)
- ``merge`` (bool, default False): merge similar filters instead of removing one
"""
