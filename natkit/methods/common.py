"""Ordinary functions every method may call: the source task, the source model, finishing a run."""

from __future__ import annotations

import shutil


def source_task(ctx, **kw):
    """The run's source task (``--source``), loaded like the target."""
    from natkit.data import load_task

    return load_task(ctx.source_spec or "fashion-mnist", root=ctx.data_root, seed=ctx.seed, **kw)


def source_model(ctx, model_name: str | None = None, *, epochs: float = 2, resolution: int = 28, source=None,
                 **model_kw):
    """The source network: the ``weights`` option's file if the method declares and the user gives it,
    else natkit's cached pretraining of ``model_name`` (default: the ``model`` option) on the source task."""
    from natkit.errors import WeightsError
    from natkit.nets import create_model
    from natkit.nets.io import load_state_dict_file
    from natkit.train import pretrained

    name = model_name or getattr(ctx.options, "model", None) or "vgg_small"
    src = source or source_task(ctx)
    weights = getattr(ctx.options, "weights", None)
    if weights:
        ch = model_kw.pop("in_channels", src.in_channels)
        model = create_model(name, num_classes=src.num_classes, in_channels=ch, **model_kw)
        try:
            model.load_state_dict(load_state_dict_file(weights))
        except RuntimeError as exc:
            raise WeightsError(f"weights file {weights} does not fit {name}: {str(exc).splitlines()[0]}") from None
        model.natkit_source = {"path": weights}
        return model.to(ctx.device)
    return pretrained(name, src, epochs=epochs, resolution=resolution, seed=ctx.seed, device=ctx.device, **model_kw)


def finalize(ctx) -> list:
    """Report the test error of the run's front and keep only front models (unless ``keep_models=all``)."""
    from natkit.nets.io import load_model
    from natkit.train import evaluate

    front = ctx.archive.front(ctx.objectives, run_id=ctx.run_id)
    for c in front:
        d = ctx.model_dir / str(c.id)
        if c.test_error is None and (d / "arch.json").is_file():
            model = load_model(d)
            inp = model.natkit_input or {}
            res = evaluate(model, ctx.task, "test", device=ctx.device, resolution=inp.get("resolution"),
                           channels=inp.get("channels"))
            ctx.archive.set_test_error(c.id, res["error"])
    if ctx.keep_models == "front" and ctx.model_dir.is_dir():
        # this run's front (what the run reports, with test errors) and the method's front over the whole
        # archive (what `natkit front` shows when earlier runs share it): both must stay exportable
        keep = {str(c.id) for c in front} | {str(c.id) for c in ctx.archive.front(ctx.objectives, method=ctx.method)}
        own = {str(c.id) for c in ctx.archive.candidates(run_id=ctx.run_id)}
        for d in ctx.model_dir.iterdir():
            if d.name in own and d.name not in keep:
                shutil.rmtree(d, ignore_errors=True)
    return ctx.archive.front(ctx.objectives, run_id=ctx.run_id)
