"""Task-dependent Deep LDA pruning (Tian, Arbel, Clark; CVIU 2021).

A source-pretrained network gets a new decision layer and is fine-tuned on the target; the Fisher
LDA utility of its pre-decision neurons keeps the top M', and cross-layer tracing gives every channel a
utility; channels under eta * std are removed (Torch-Pruning) and the network fine-tuned. Stage
``schedule`` is the paper's procedure (raise eta while accuracy holds); stage ``search`` is NSGA-II/III
(pymoo) over eta and M'. ``--space FILE`` is a TOML whose [space] table (family ``lda``) sets options.

Options (``--option KEY=VALUE``; ``natkit search lda --list-options`` prints them):

- ``generations`` (int, default 10, quick 2): pymoo generations of the eta/M' search
- ``pop_size`` (int, default 20, quick 4): population size of the eta/M' search
- ``space`` (str | none, default None): a TOML FILE whose [space] table (family lda) sets these options
- ``model`` (str, default 'vgg_small'): source network
- ``weights`` (str | none, default None): the user's source-weights file (safetensors / state dict) used as the source network instead of natkit's pretraining (same as ``--weights``)
- ``resolution`` (int, default 28): input resolution
- ``source_epochs`` (float, default 2.0, quick 3.0): source pretraining epochs (cached)
- ``source_samples_per_class`` (int | none, default 2000, quick 200): source images per class
- ``transfer_epochs`` (float, default 8.0, quick 4.0): fine-tuning of the transferred network on the target
- ``finetune_epochs`` (float, default 6.0, quick 1.0): fine-tuning after each pruning
- ``lr`` (float, default 0.02): learning rate
- ``batch_size`` (int, default 64): batch size
- ``max_batches`` (int | none, default None): cap on batches per epoch
- ``utility`` (str, default 'diagonal'): Fisher utility (diagonal|full)
- ``select`` (str, default 'validation'): how M' is chosen: validation | otsu | a share in (0, 1]
- ``select_tolerance`` (float, default 0.0): read-out accuracy we may give up when choosing M'
- ``min_width`` (float, default 0.2): share of its unpruned width every layer keeps
- ``m_floor`` (int, default -1): smallest M'; -1: classes - 1
- ``tolerance`` (float, default 0.01): val accuracy the schedule may give up against the unpruned network
- ``eta_start`` (float, default 0.8, quick 1.0): first eta of the schedule
- ``eta_step`` (float, default 0.25): eta step (schedule and search grid)
- ``schedule`` (bool, default True): run the paper's schedule stage
- ``schedule_rounds`` (int, default 14, quick 1): rounds of the schedule
- ``recover_epochs`` (float, default 3.0, quick 0.0): extra fine-tuning of a failing round
- ``eta_levels`` (int, default 20): search: eta in {0, eta_step, ..., eta_levels * eta_step}
- ``shares`` (list of float, default (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0)): kept shares M'
- ``per_layer_eta`` (bool, default False): one eta per layer group instead of a shared one
- ``search_mode`` (str, default 'progressive', quick 'oneshot'): how a search candidate is pruned (progressive|oneshot)
- ``trace_images`` (int, default 512, quick 128): images for tracing
- ``sigma`` (float, default 0.2): Gaussian noise of robust_error
- ``epsilon`` (float, default 0.05): FGSM epsilon of robust_error
- ``robust_images`` (int, default 256, quick 64): images for robust_error
"""
