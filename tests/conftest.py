import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Pretrained source models go to a per-session temp cache, never the user's."""
    monkeypatch.setenv("NATKIT_CACHE", str(tmp_path_factory.getbasetemp() / "natkit-cache"))


@pytest.fixture(scope="session")
def digits():
    from natkit.data import load_task

    return load_task("digits", seed=0)


@pytest.fixture()
def make_ctx(tmp_path):
    """The one way tests get a run's context: ``make_ctx(method, task, options={...}, quick=..., ...)``
    (options parsed by the method's declared Options; archive and run started under ``tmp_path``)."""
    from natkit.api import make_context

    def make(method, task, *, out_dir=None, **kw):
        kw.setdefault("verbose", False)
        out = out_dir or tmp_path
        out.mkdir(parents=True, exist_ok=True)
        return make_context(method, task=task, out_dir=out, **kw)

    return make
