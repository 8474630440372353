"""Budget and space files: descriptive keys accepted, a misspelt key refused with the nearest valid one."""

import pytest

from natkit.core.budget import load_budget
from natkit.errors import ConfigError


def test_budget_with_name_and_description_is_accepted(tmp_path):
    p = tmp_path / "mcu.toml"
    p.write_text('[budget]\nname = "cortex-m4"\ndescription = "256 kB flash"\nmacs = 5e6\nparams = 100e3\n')
    b = load_budget(str(p))
    assert b.limits == {"macs": 5e6, "params": 100e3}
    assert b.feasible({"macs": 4e6, "params": 9e4}) and not b.feasible({"macs": 6e6, "params": 9e4})


@pytest.mark.parametrize("typo,nearest", [("mac", "macs"), ("param", "params"), ("latency", "latency_ms"),
                                          ("MACs", "macs")])
def test_budget_typo_is_an_error_naming_the_nearest_key(tmp_path, typo, nearest):
    p = tmp_path / "b.toml"
    p.write_text(f"[budget]\n{typo} = 5e6\n")
    with pytest.raises(ConfigError) as e:
        load_budget(str(p))
    assert f"unknown key '{typo}'" in str(e.value) and f"did you mean '{nearest}'" in str(e.value)


def test_width_space_accepts_descriptive_keys_and_suggests_on_typo(tmp_path):
    from natkit.methods.width.space import load_width_space

    p = tmp_path / "s.toml"
    p.write_text('[space]\nname = "narrow"\nfamily = "vgg_widths"\nlayers = 2\npool_after = [1, 2]\n'
                 'choices = [4, 8]\n[train]\ndescription = "short"\nepochs = 1\n')
    from natkit.api import method_options

    space = load_width_space(str(p))
    opts, _ = method_options("width", {"space": str(p)})
    assert space.choices == [4, 8] and opts.epochs == 1
    p.write_text('[space]\nfamily = "vgg_widths"\nlayer = 2\n')
    with pytest.raises(ConfigError, match="did you mean 'layers'"):
        load_width_space(str(p))


def test_nat_space_accepts_descriptive_keys(tmp_path):
    from pathlib import Path

    from natkit.core.config import read_toml
    from natkit.methods.nat.method import load_nat_space

    text = Path(read_toml("nat_small")["_path"]).read_text()
    p = tmp_path / "n.toml"
    p.write_text(text.replace("[space]\n", '[space]\nname = "mine"\n'))
    config, *_ = load_nat_space(str(p))
    assert config.stem_width == 8
    p.write_text(text.replace("stem_width", "stem_widht"))
    with pytest.raises(ConfigError, match="did you mean 'stem_width'"):
        load_nat_space(str(p))
