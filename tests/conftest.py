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
