"""A network as the layer units a device latency table is made of.

A unit is what onnxruntime runs as one step of the candidate's exported ONNX graph (the graph
``natkit export --format onnx`` writes, batch norm already folded into the convolutions by torch's
exporter): a convolution together with the activation it feeds alone (onnxruntime fuses those), or any
other single node (pooling, residual ``Add``, DenseNet ``Concat``, squeeze-excite ``Mul``, ``Gemm``...).
Its key is a canonical JSON description -- operators, attributes, input shapes, constant shapes --
so the same layer in two networks is the same table entry, and the standalone profiler can rebuild it
from the key alone.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FUSED_ACTIVATIONS = {"Relu", "Clip", "HardSigmoid", "HardSwish", "Sigmoid", "LeakyRelu", "Tanh"}
DROPPED = {"Identity", "Dropout", "Constant"}  # removed or folded before onnxruntime runs the graph


@dataclass(frozen=True)
class Unit:
    key: str
    spec: dict
    group: str  # operators and shape-free attributes: units whose latencies scale alike
    work: float  # MACs for Conv/Gemm/MatMul, else input + output elements


def model_units(model, resolution: int, channels: int) -> list[Unit]:
    """The units of ``model`` exported at batch 1 and ``resolution`` px."""
    return graph_units(export_proto(model, resolution, channels))


def export_proto(model, resolution: int, channels: int):
    import onnx

    from natkit.export.onnx import export_onnx

    with tempfile.TemporaryDirectory(prefix="natkit-units-") as d:
        path = export_onnx(model, Path(d) / "m.onnx", resolution=resolution, channels=channels)
        return onnx.load(str(path))


def _parse(proto):
    from onnx import numpy_helper, shape_inference

    proto = shape_inference.infer_shapes(proto)
    g = proto.graph
    shapes = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        shapes[vi.name] = [int(d.dim_value) for d in vi.type.tensor_type.shape.dim]
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    for n in g.node:
        if n.op_type == "Constant":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    alias = {n.output[0]: n.input[0] for n in g.node if n.op_type in ("Identity", "Dropout")}
    for a in list(alias):  # chains of pass-through nodes
        while alias[a] in alias:
            alias[a] = alias[alias[a]]
    for t, src in alias.items():
        if src in consts:
            consts[t] = consts[src]
    nodes = [n for n in g.node if n.op_type not in DROPPED]
    shapes["__alias__"] = alias
    return nodes, shapes, consts, {alias.get(o.name, o.name) for o in g.output}


def graph_units(proto) -> list[Unit]:
    nodes, shapes, consts, graph_outputs = _parse(proto)
    consumers: dict = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(shapes["__alias__"].get(i, i), []).append(n)
    units, taken = [], set()
    for n in nodes:
        if id(n) in taken:
            continue
        group = [n]
        users = consumers.get(n.output[0], [])
        if n.op_type == "Conv" and len(users) == 1 and users[0].op_type in FUSED_ACTIVATIONS \
                and n.output[0] not in graph_outputs:
            group.append(users[0])
            taken.add(id(users[0]))
        units.append(_unit(group, shapes, consts))
    return units


def graph_spec(proto) -> dict:
    """The whole graph in the units' canonical form (weights by shape only): what the standalone
    profiler rebuilds to time complete networks for calibration."""
    nodes, shapes, consts, _ = _parse(proto)
    return _unit(nodes, shapes, consts).spec


def _attr(a, helper):
    v = helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, (list, tuple)):
        return [x.decode() if isinstance(x, bytes) else (round(x, 6) if isinstance(x, float) else x) for x in v]
    return round(v, 6) if isinstance(v, float) else v


def _unit(nodes, shapes, consts) -> Unit:
    from onnx import helper

    names: dict = {}
    inputs, inits, spec_nodes = [], [], []
    produced = {o for n in nodes for o in n.output}

    alias = shapes.get("__alias__", {})

    def name(t):
        t = alias.get(t, t)
        if t in names:
            return names[t]
        if t == "":
            return ""
        if t in produced:
            names[t] = f"t{len(names)}"
        elif t in consts:
            arr = consts[t]
            names[t] = f"w{len(inits)}"
            by_value = arr.dtype.kind in "iub"  # shapes and axes; float weights matter by shape only
            inits.append([names[t], list(arr.shape), str(arr.dtype), arr.reshape(-1).tolist() if by_value else None])
        else:
            names[t] = f"x{len(inputs)}"
            inputs.append([names[t], shapes.get(t, [])])
        return names[t]

    for n in nodes:
        spec_nodes.append({"op": n.op_type, "in": [name(i) for i in n.input], "out": [name(o) for o in n.output],
                           "attrs": {a.name: _attr(a, helper) for a in n.attribute}})
    last = nodes[-1].output[0]
    spec = {"nodes": spec_nodes, "inputs": inputs, "inits": inits, "outputs": [[names[last], shapes.get(last, [])]]}
    key = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return Unit(key, spec, _group(spec), _work(spec))


def _group(spec) -> str:
    parts = []
    for n in spec["nodes"]:
        a = n["attrs"]
        tag = n["op"]
        if n["op"] == "Conv":
            w = next(i for i in spec["inits"] if i[0] == n["in"][1])
            k = "x".join(map(str, w[1][2:]))
            tag += f"[k{k},s{a.get('strides', [1])[0]},{'dw' if a.get('group', 1) > 1 else 'g1'}]"
        elif "kernel_shape" in a:
            tag += f"[k{a['kernel_shape'][0]},s{a.get('strides', [1])[0]}]"
        parts.append(tag)
    return "+".join(parts)


def _work(spec) -> float:
    n = spec["nodes"][0]
    out = spec["outputs"][0][1]
    shapes = {i[0]: i[1] for i in spec["inputs"]} | {i[0]: i[1] for i in spec["inits"]}
    if n["op"] == "Conv":
        w = shapes[n["in"][1]]
        return float(np.prod(shapes[n["in"][0]][:1] + [w[0]] + _spatial(spec, n)) * np.prod(w[1:]))
    if n["op"] in ("Gemm", "MatMul"):
        a, b = shapes[n["in"][0]], shapes[n["in"][1]]
        return float(np.prod(a) * (b[0] if n["attrs"].get("transB") else b[-1]))
    return float(sum(np.prod(s[1]) for s in spec["inputs"]) + np.prod(out))


def _spatial(spec, conv_node) -> list[int]:
    # the conv's own output is the unit's output unless an activation follows: same shape either way
    return list(spec["outputs"][0][1][2:])
