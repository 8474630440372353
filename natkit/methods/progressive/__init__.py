"""CNN simplification with progressive retraining (Osaku, Gomes, Falcão; 2021).

For a trained chain CNN (the VGG family) and one elimination share per conv layer, each layer's kernels
are scored by a relevance criterion (or chosen by a person: ``relevance=human`` with a ``decisions`` file),
eliminated physically (Torch-Pruning) with the next layer's inputs, and only layers 1..l+1 are retrained
before the next layer. NSGA-II/III (pymoo) searches the per-layer shares; every intermediate state is
archived. Its space is built from the network, so ``--space`` is rejected; ``--weights`` (option
``weights``) replaces natkit's source pretraining by the user's network.

Options (``--option KEY=VALUE``; ``natkit search progressive --list-options`` prints them):

- ``generations`` (int, default 10, quick 2): NSGA generations
- ``pop_size`` (int, default 20, quick 4): population size
- ``model`` (str, default 'vgg_small'): the chain CNN pretrained on the source task
- ``weights`` (str | none, default None): the user's source-weights file (safetensors / state dict) used as the source network instead of natkit's pretraining (same as ``--weights``)
- ``resolution`` (int, default 28): input size for the 28-32 px VGG (digits are upsampled from 8 px)
- ``source_epochs`` (float, default 2.0, quick 1.0): source pretraining epochs (cached)
- ``source_max_batches`` (int | none, default None, quick 200): cap on batches per source epoch
- ``finetune_epochs`` (float, default 20.0, quick 3.0): fine-tuning of the whole network on the target first
- ``epochs`` (float, default 3.0, quick 1.0): E: retraining epochs after each simplified layer
- ``lr`` (float, default 0.05): retraining learning rate
- ``finetune_lr`` (float, default 0.05): learning rate of the first fine-tuning
- ``batch_size`` (int, default 64): batch size
- ``bn_stats`` (str, default 'frozen'): BatchNorm statistics of frozen layers during retraining (update|frozen)
- ``score_images`` (int, default 256, quick 64): the fixed subset every relevance score is computed on
- ``share_step`` (float, default 0.1): elimination share per level
- ``max_level`` (int, default 8): largest level (shares 0, 0.1, ..., 0.8)
- ``relevance`` (str, default 'apoz'): relevance criterion, or human
- ``decisions`` (str | none, default None): relevance=human: decision file (TOML or JSON)
- ``projection`` (str, default 'pca'): human mode: kernel projection (pca|tsne)
- ``images_per_class`` (int, default 2): human mode: columns of the activation sheet per class
- ``max_batches`` (int | none, default None, quick 18): cap on batches per retraining epoch
- ``finetune_max_batches`` (int | none, default None): cap on batches per fine-tuning epoch
"""
