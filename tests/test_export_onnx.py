"""ONNX export of every kind of network natkit produces, checked by onnxruntime against PyTorch."""

import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from natkit.export import TOLERANCE, export_checked, run, session
from natkit.export.data import synthetic_images
from natkit.nets import create_model
from natkit.nets.io import load_model, save_model

torch.set_num_threads(1)


def _busy_bn(model):
    """Non-trivial batch-norm statistics, so a graph that dropped them would not match by chance."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
    return model.eval()


def _roundtrip_and_check(model, tmp_path, res, ch, **kw):
    save_model(model, tmp_path / "m")  # what `natkit export` loads: the stored model, rebuilt
    again = load_model(tmp_path / "m")
    images = synthetic_images(8, resolution=res, channels=ch, seed=3)
    rec = export_checked(again, tmp_path / "model.onnx", resolution=res, channels=ch, images=images,
                         images_source="test", **kw)
    assert rec["opset"] >= 17 and rec["check"]["ok"], rec["check"]
    assert rec["check"]["max_abs_diff"] <= TOLERANCE and rec["check"]["same_top1"] == 1.0
    return rec


@pytest.mark.parametrize("name", ["vgg_tiny", "resnet_tiny", "densenet_tiny"])
def test_family_networks_export_and_match(name, tmp_path):
    model = _busy_bn(create_model(name, num_classes=4, in_channels=1))
    rec = _roundtrip_and_check(model, tmp_path, 16, 1)
    assert rec["input_shape"] == [1, 1, 16, 16]
    import onnx

    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 1, 16, 16]  # fixed shape at the candidate's resolution


@pytest.mark.parametrize("name", ["resnet_tiny", "densenet_tiny"])
def test_physically_pruned_networks_export(name, tmp_path):
    from natkit.prune.surgery import magnitude_prune

    model = _busy_bn(create_model(name, num_classes=4, in_channels=1))
    before = sum(p.numel() for p in model.parameters())
    magnitude_prune(model, torch.zeros(1, 1, 16, 16), ratio=0.5)  # residual / concat joins pruned together
    assert sum(p.numel() for p in model.parameters()) < before
    _roundtrip_and_check(model, tmp_path, 16, 1)


def test_nat_subnet_exports(tmp_path):
    from natkit.methods.nat.space import NATSpace
    from natkit.methods.nat.ofa_mbv3 import MBV3Config, OFAMobileNetV3

    cfg = MBV3Config(resolutions=(16, 20), stem_width=4, first_block_width=4, stage_widths=(4, 8, 8, 12, 12),
                     feature_mix_width=16, divisor=4, dropout=0.0)
    torch.manual_seed(0)
    net = _busy_bn(OFAMobileNetV3(cfg, 5, 1))
    space = NATSpace(cfg, num_classes=5, in_channels=1)
    arch = space.decode(space.sample(1, np.random.default_rng(0))[0])
    sub = net.extract(arch)
    _roundtrip_and_check(sub, tmp_path, arch["resolution"], 1)


def test_tascnet_rebuilt_network_exports(tmp_path):
    from natkit.methods.tascnet import layers as T

    base = _busy_bn(create_model("resnet_tiny", num_classes=10, in_channels=1))
    ex = torch.zeros(2, 1, 12, 12)
    slots = T.layer_slots(base, ex, 2)
    plan = T.decode_genome(slots, T.genome_bounds(slots)[1])
    model = T.describe(T.rebuild(base, plan, ex, 3), base.natkit_arch, plan, 3, 12, 1)
    _roundtrip_and_check(model, tmp_path, 12, 1)


def test_ke_slim_network_exports(tmp_path):
    from natkit.methods.ke.split import extract_slim, kels_masks

    model = _busy_bn(create_model("densenet_tiny", num_classes=10, in_channels=1))
    slim = extract_slim(model, kels_masks(model, 0.5, resolution=8)).eval()
    _roundtrip_and_check(slim, tmp_path, 8, 1)


def test_dynamic_batch(tmp_path):
    model = _busy_bn(create_model("vgg_tiny", num_classes=3, in_channels=3))
    rec = _roundtrip_and_check(model, tmp_path, 16, 3, dynamic_batch=True)
    assert rec["input_shape"][0] == "batch"
    x = synthetic_images(5, resolution=16, channels=3).numpy()
    assert run(session(tmp_path / "model.onnx"), x).shape == (5, 3)


def test_a_wrong_graph_fails_the_check(tmp_path):
    from natkit.export.onnx import compare, export_onnx

    model = _busy_bn(create_model("vgg_tiny", num_classes=3, in_channels=1))
    export_onnx(model, tmp_path / "model.onnx", resolution=16, channels=1)
    with torch.no_grad():
        model.classifier[-1].bias.add_(1e-3)  # PyTorch side drifts after the export
    check = compare(model, tmp_path / "model.onnx", synthetic_images(4, resolution=16, channels=1))
    assert not check["ok"] and check["max_abs_diff"] > TOLERANCE


def _fake_run(tmp_path, task="digits", name="vgg_tiny", resolution=8):
    """A run directory as a search leaves it: archive with one candidate, its stored model, run.json."""
    from natkit.core.archive import Archive

    run = tmp_path / "run"
    run.mkdir()
    archive = Archive(run / "archive.sqlite")
    run_id = archive.start_run("width", task, {}, 0)
    model = create_model(name, num_classes=10, in_channels=1)
    model.natkit_input = {"resolution": resolution, "channels": 1}
    cid = archive.add(run_id, "width", generation=0, encoding=[1], arch=model.natkit_arch,
                      metrics={"error": 0.5, "params": 10, "macs": 10})
    save_model(model, run / "models" / str(cid))
    (run / "run.json").write_text(json.dumps({"run_id": run_id, "archive": str(run / "archive.sqlite"),
                                              "args": {"task": task, "seed": 0, "samples_per_class": 20}}))
    return run, cid


def test_cli_export_onnx_records_the_check(tmp_path, capsys):
    from natkit.cli import main

    run, cid = _fake_run(tmp_path)
    assert main(["export", str(run), "--id", str(cid), "--format", "onnx"]) == 0
    rec = json.loads((run / "export" / str(cid) / "candidate.json").read_text())
    assert rec["onnx"]["check"]["ok"] and "validation images of digits" in rec["onnx"]["check"]["images_source"]
    assert rec["onnx"]["input_shape"] == [1, 1, 8, 8] and len(rec["preprocess"]["mean"]) == 1
    assert (run / "export" / str(cid) / "model.onnx").is_file()
    assert "max |diff|" in capsys.readouterr().out


def test_cli_export_says_when_it_checks_on_synthetic_images(tmp_path, capsys):
    from natkit.cli import main

    run, cid = _fake_run(tmp_path, task="npz:/nonexistent/data.npz")
    assert main(["export", str(run), "--id", str(cid), "--format", "onnx"]) == 0
    rec = json.loads((run / "export" / str(cid) / "candidate.json").read_text())
    assert rec["onnx"]["check"]["ok"] and "standard-normal" in rec["onnx"]["check"]["images_source"]
    assert "could not be loaded" in rec["onnx"]["check"]["images_source"]


def test_cli_int8_needs_onnx(tmp_path, capsys):
    from natkit.cli import main

    run, cid = _fake_run(tmp_path)
    assert main(["export", str(run), "--id", str(cid), "--int8"]) == 2
    assert "--int8 needs --format onnx" in capsys.readouterr().err


def test_cli_int8_reports_errors_size_and_latency_next_to_fp32(tmp_path, capsys):
    from natkit.cli import main

    run, cid = _fake_run(tmp_path, name="vgg_small", resolution=16)  # big enough for int8 weights to pay
    assert main(["export", str(run), "--id", str(cid), "--format", "onnx", "--int8"]) == 0
    out = run / "export" / str(cid)
    rec = json.loads((out / "candidate.json").read_text())["int8"]
    assert (out / "model.int8.onnx").is_file() and rec["calibration_split"] == "train"
    assert rec["calibration_images"] > 0 and rec["bytes"] < rec["fp32"]["bytes"]
    for r in (rec, rec["fp32"]):
        assert 0.0 <= r["val_error"] <= 1.0 and 0.0 <= r["test_error"] <= 1.0 and r["latency_ms"] > 0
    assert rec["test_error_change"] == pytest.approx(rec["test_error"] - rec["fp32"]["test_error"])
    import onnx

    ops = {n.op_type for n in onnx.load(str(out / "model.int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    text = capsys.readouterr().out
    assert "fp32" in text and "int8" in text and "test error" in text


def test_int8_without_the_task_is_a_clear_error(tmp_path, capsys):
    from natkit.cli import main

    run, cid = _fake_run(tmp_path, task="npz:/nonexistent/data.npz")
    assert main(["export", str(run), "--id", str(cid), "--format", "onnx", "--int8"]) == 2
    assert "training images" in capsys.readouterr().err
