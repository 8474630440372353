"""Device latency tables: the standalone profiler, the unit table's predictions, the OFA YAML table."""

import ast
import json

import numpy as np
import pytest
import torch

from natkit.errors import ConfigError
from natkit.measure.latency import HardwareSetting, measure_latency_ms
from natkit.export.profile import collect, sample_networks, write_script
from natkit.measure.tables import OFALookupTable, UnitTable, load_table
from natkit.measure.units import graph_spec, graph_units, model_units
from natkit.nets import create_model

torch.set_num_threads(1)


def test_units_of_a_resnet_fuse_conv_and_relu_and_keep_the_residual_add():
    model = create_model("resnet_tiny", num_classes=3, in_channels=1).eval()
    units = model_units(model, 12, 1)
    ops = [tuple(n["op"] for n in u.spec["nodes"]) for u in units]
    assert ("Conv", "Relu") in ops and ("Add",) in ops and ("Gemm",) in ops
    assert not any("BatchNormalization" in o for o in ops)  # folded into the convolutions by the exporter
    again = model_units(create_model("resnet_tiny", num_classes=3, in_channels=1), 12, 1)
    assert [u.key for u in again] == [u.key for u in units]  # weights do not enter the key


def test_hand_written_protobuf_is_the_same_graph_for_onnx_and_onnxruntime():
    import onnx
    import onnxruntime as ort

    from natkit.measure import profile_script as ps
    from natkit.measure.units import export_proto

    model = create_model("densenet_tiny", num_classes=3, in_channels=1).eval()
    proto = export_proto(model, 8, 1)
    for spec in [u.spec for u in graph_units(proto)] + [graph_spec(proto)]:
        m = onnx.load_from_string(ps.build_model(spec))
        onnx.checker.check_model(m, full_check=True)
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        feed = {n: np.zeros(s, np.float32) for n, s in spec["inputs"]}
        out = sess.run(None, feed)[0]
        assert list(out.shape) == spec["outputs"][0][1]


def test_written_script_imports_only_numpy_and_onnxruntime(tmp_path):
    payload = collect(sample_networks("width", 2, seed=0))
    script = write_script(tmp_path / "profile.py", payload)
    tree = ast.parse(script.read_text())
    modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    stdlib = {"argparse", "json", "os", "platform", "statistics", "struct", "sys", "time"}
    assert modules - stdlib == {"numpy", "onnxruntime"}


def _fake_table(payload, per_unit_ms=0.01, overhead=0.005):
    """A table as if every unit cost ``overhead + per_unit_ms`` and networks summed exactly."""
    units = {k: overhead + per_unit_ms for k, _ in payload["units"]}
    nets = [{"name": n["name"], "units": n["units"], "ms": overhead + per_unit_ms * len(n["units"])}
            for n in payload["networks"]]
    return {"format": "natkit-latency-table", "version": 1, "overhead_ms": overhead, "units": units,
            "unit_order": [k for k, _ in payload["units"]], "networks": nets}


def test_unit_table_sums_units_and_estimates_missing_ones(tmp_path):
    payload = collect(sample_networks("width", 3, seed=0))
    table = UnitTable(_fake_table(payload))
    model, res, ch = next(iter(sample_networks("width", 1, seed=0)))
    n = len(model_units(model, res, ch))
    assert table.predict_model(model, res, ch) == pytest.approx(0.005 + 0.01 * n, rel=1e-6)
    assert table.last_prediction == {"units": n, "estimated": 0}
    other = create_model("vgg", num_classes=10, in_channels=1, cfg=[5, "M", 7], hidden=[9])
    assert table.predict_model(other, 28, 1) > 0.005 and table.last_prediction["estimated"] > 0


def test_profile_cli_writes_a_table_that_a_budget_uses(tmp_path, capsys):
    from natkit.cli import main
    from natkit.core.budget import load_hardware

    out = tmp_path / "dev.json"
    assert main(["profile", "--out", str(out), "--spaces", "width", "--samples", "3", "--repeats", "3",
                 "--warmup", "1", "--write-script", str(tmp_path / "p.py")]) == 0
    data = json.loads(out.read_text())
    assert data["threads"] == 1 and data["overhead_ms"] > 0 and len(data["networks"]) == 3
    assert all(v > 0 for v in data["units"].values()) and (tmp_path / "p.py").is_file()
    toml = tmp_path / "b.toml"
    toml.write_text('[budget]\nlatency_ms = 100.0\n\n[hardware]\ntable = "dev.json"\n')
    hw = load_hardware(str(toml))
    model, res, ch = next(iter(sample_networks("width", 1, seed=5)))
    t = measure_latency_ms(model, res, ch, setting=hw)
    assert t == measure_latency_ms(model, res, ch, setting=hw) > 0  # a prediction: no timing noise


def test_profile_cli_rejects_bad_input(capsys):
    from natkit.cli import main

    assert main(["profile"]) == 2
    assert main(["profile", "--out", "x.json", "--spaces", "transformers"]) == 2
    assert "transformers" in capsys.readouterr().err
    assert main(["profile", "--out", "x.json", "--resolution", "4"]) == 2
    assert "--resolution" in capsys.readouterr().err


def test_profile_samples_width_and_pruned_networks_at_the_asked_resolution():
    """A device table for a user's 3-channel 64-px task times units at 64 px, not the spaces' 28 px."""
    width = list(sample_networks("width", 2, seed=0, channels=3, resolution=64))
    pruned = list(sample_networks("pruned", 2, seed=0, channels=3, resolution=64))
    assert {(r, c) for _, r, c in width + pruned} == {(64, 3)}
    first = collect(width[:1])["units"][0][1]  # the stem convolution's unit
    assert first["inputs"][0][1] == [1, 3, 64, 64]
    assert {r for _, r, _ in sample_networks("width", 1, seed=0)} == {28}  # the space's own by default


# ---- the OFA / nsganetv2 YAML look-up table ----------------------------------------------------------

@pytest.fixture(scope="module")
def lut():
    return load_table("i7-8700K_lut")


@pytest.fixture(scope="module")
def imagenet_space():
    from natkit.methods.nat.method import load_nat_space
    from natkit.methods.nat.space import NATSpace

    return NATSpace(load_nat_space("nat_imagenet")[0], num_classes=1000, in_channels=3)


def test_published_table_covers_nat_imagenet_subnets(lut, imagenet_space):
    assert isinstance(lut, OFALookupTable) and len(lut.entries) == 4050
    X = np.vstack([imagenet_space.extremes(), imagenet_space.sample(50, np.random.default_rng(0))])
    lat = [lut.predict_arch(imagenet_space.decode(x)) for x in X]
    big, small = lat[0], lat[1]
    assert all(small <= t <= big for t in lat)  # the largest and the smallest subnet bound the rest
    assert 5 < big < 100 and 1 < small < big / 2  # milliseconds on an i7-8700K


def test_published_table_entries_are_summed(lut, imagenet_space):
    arch = imagenet_space.decode(imagenet_space.extremes()[1])
    keys = lut.keys_for(arch)
    assert keys[0][0] == "first_conv-input:192x192x3-output:96x96x16"
    assert lut.predict_arch(arch) == pytest.approx(sum(lut.entries[k] * f for k, f in keys))


def test_published_table_predicts_extracted_subnets_only(lut, imagenet_space):
    from natkit.methods.nat.subnet import MBV3Subnet

    arch = imagenet_space.decode(imagenet_space.extremes()[1])
    assert lut.predict_model(MBV3Subnet(arch), 192, 3) == pytest.approx(lut.predict_arch(arch))
    with pytest.raises(ConfigError, match="NAT subnets only"):
        lut.predict_model(create_model("vgg_tiny", num_classes=3, in_channels=3), 32, 3)
    with pytest.raises(ConfigError, match="3-channel"):
        lut.predict_arch({**arch, "in_channels": 1})


def test_shipped_table_by_name_in_a_budget(tmp_path):
    from natkit.core.budget import load_hardware

    toml = tmp_path / "b.toml"
    toml.write_text('[budget]\nlatency_ms = 20\n\n[hardware]\ntable = "i7-8700K_lut"\n')
    hw = load_hardware(str(toml))
    assert hw.runtime == "table" and hw.table.endswith("i7-8700K_lut.yaml")
    assert isinstance(HardwareSetting(runtime="table", table=hw.table), HardwareSetting)


def test_latency_table_budget_runs_a_search_end_to_end(tmp_path):
    """profile -> budget TOML naming the table -> search with latency_ms -> front within the budget."""
    from natkit.cli import main
    from natkit.core.archive import Archive

    assert main(["profile", "--out", str(tmp_path / "dev.json"), "--spaces", "width", "--samples", "4",
                 "--repeats", "3", "--warmup", "1"]) == 0
    table = load_table(str(tmp_path / "dev.json"))
    (tmp_path / "b.toml").write_text('[budget]\nlatency_ms = 1000.0\n\n[hardware]\ntable = "dev.json"\n')
    out = tmp_path / "run"
    assert main(["search", "width", "--task", "digits", "--quick", "--generations", "1", "--pop-size", "4",
                 "--option", "epochs=3", "--option", "max_batches=9", "-q", "--out", str(out),
                 "--objectives", "error,latency_ms", "--budget", str(tmp_path / "b.toml")]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["hardware"]["runtime"] == "table" and run["hardware"]["table"] == str((tmp_path / "dev.json").resolve())
    cands = Archive(out / "archive.sqlite").candidates(status="ok")
    from natkit.methods.width.space import load_width_space
    from natkit.nets import create_model

    space = load_width_space("vgg_widths")
    for c in cands[:3]:  # archived latencies are the table's predictions for those networks
        model = create_model("vgg", num_classes=10, in_channels=1, **space.decode(c.encoding))
        assert c.latency_ms == pytest.approx(table.predict_model(model, 28, 1), rel=1e-9)
    assert main(["front", str(out), "--objectives", "error,latency_ms", "--format", "json"]) == 0
