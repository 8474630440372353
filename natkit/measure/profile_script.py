"""natkit device profiler: times the layer units of natkit's search spaces with onnxruntime and writes a
latency table (JSON) that natkit turns into `latency_ms` predictions without the device.

Standalone: needs only Python 3.8+, numpy and onnxruntime on the device. Written out by
`natkit profile --write-script FILE` with the units to time embedded at the end; run it on the device as
`python FILE --out DEVICE.json [--threads 1]`, copy DEVICE.json back and name it in a budget TOML:
`[hardware] table = "DEVICE.json"`.

Protocol (natkit/measure/latency.py): batch 1, threads fixed (intra-op = --threads, inter-op 1,
sequential execution, full graph optimisation, CPU provider), warm-up runs discarded, median of the
timed runs in milliseconds; the timed runs are spread over interleaved rounds within shuffled chunks
of units and networks, so a change of the machine's load does not favour one kind of entry. The fixed cost of one session run (an Identity graph) is measured between
the units and stored as `overhead_ms`; natkit predicts a network as that overhead plus the sum of each
unit's time above it, each operator class's share calibrated on the sample networks timed whole.
"""

import argparse
import json
import os
import platform
import statistics
import struct
import sys
import time

import numpy as np
import onnxruntime as ort

OPSET = 17
IR_VERSION = 8
CHUNK = 100  # sessions alive and timed together
ROUNDS = 3
DTYPES = {"float32": 1, "uint8": 2, "int8": 3, "int32": 6, "int64": 7, "bool": 9, "float64": 11}


# ---- ONNX ModelProto written with the protobuf wire format by hand, so the device needs no `onnx` ----
def _varint(n):
    n &= 0xFFFFFFFFFFFFFFFF  # negative int64 values as two's complement
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _tag(field, wire):
    return _varint(field << 3 | wire)


def _bytes(field, payload):
    return _tag(field, 2) + _varint(len(payload)) + payload


def _int(field, n):
    return _tag(field, 0) + _varint(int(n))


def _str(field, s):
    return _bytes(field, s.encode())


def _tensor(name, array):
    out = b"".join(_int(1, d) for d in array.shape) + _int(2, DTYPES[str(array.dtype)])
    return out + _str(8, name) + _bytes(9, np.ascontiguousarray(array).tobytes())


def _value_info(name, shape, elem=1):
    dims = b"".join(_bytes(1, _int(1, d)) for d in shape)
    tensor_type = _int(1, elem) + (_bytes(2, dims) if shape else b"")
    return _str(1, name) + _bytes(2, _bytes(1, tensor_type))


def _attribute(name, value):
    out = _str(1, name)
    if isinstance(value, bool) or isinstance(value, int):
        return out + _int(3, value) + _int(20, 2)
    if isinstance(value, float):
        return out + _tag(2, 5) + struct.pack("<f", value) + _int(20, 1)
    if isinstance(value, str):
        return out + _bytes(4, value.encode()) + _int(20, 3)
    if all(isinstance(v, int) for v in value):
        return out + b"".join(_int(8, v) for v in value) + _int(20, 7)
    return out + b"".join(_tag(7, 5) + struct.pack("<f", v) for v in value) + _int(20, 6)


def _node(i, n):
    out = b"".join(_str(1, x) for x in n["in"]) + b"".join(_str(2, x) for x in n["out"])
    out += _str(3, f"n{i}") + _str(4, n["op"])
    return out + b"".join(_bytes(5, _attribute(k, v)) for k, v in sorted(n["attrs"].items()))


def build_model(spec, seed=0):
    """Serialized ONNX model of one unit: its constants (random weights of the stored shapes, or the
    stored values of shape-like constants) as initializers, its other inputs as graph inputs."""
    rng = np.random.default_rng(seed)
    inits = []
    for name, shape, dtype, values in spec["inits"]:
        if values is not None:
            arr = np.asarray(values, dtype=dtype).reshape(shape)
        else:
            arr = (0.1 * rng.standard_normal(shape)).astype(dtype)
        inits.append(_tensor(name, arr))
    graph = b"".join(_bytes(1, _node(i, n)) for i, n in enumerate(spec["nodes"])) + _str(2, "unit")
    graph += b"".join(_bytes(5, t) for t in inits)
    graph += b"".join(_bytes(11, _value_info(name, shape)) for name, shape in spec["inputs"])
    graph += b"".join(_bytes(12, _value_info(name, shape)) for name, shape in spec["outputs"])
    opset = _str(1, "") + _int(2, OPSET)
    return _int(1, IR_VERSION) + _str(2, "natkit-profile") + _bytes(7, graph) + _bytes(8, opset)


IDENTITY = {"nodes": [{"op": "Identity", "in": ["x0"], "out": ["t0"], "attrs": {}}], "inputs": [["x0", [1, 1]]],
            "inits": [], "outputs": [["t0", [1, 1]]]}


# ---- timing ------------------------------------------------------------------------------------------
def session(model_bytes, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(model_bytes, sess_options=opts, providers=["CPUExecutionProvider"])


def time_specs(specs, threads, warmup, repeats, rounds=ROUNDS):
    """Median ms of each spec. The specs' sessions are created together and timed in ``rounds``
    interleaved rounds (``repeats`` timed runs in all), so a change of the machine's load during the
    chunk affects every spec alike."""
    rng = np.random.default_rng(1)
    sessions, feeds = [], []
    for spec in specs:
        sessions.append(session(build_model(spec), threads))
        feeds.append({name: rng.standard_normal(shape).astype(np.float32) for name, shape in spec["inputs"]})
        for _ in range(warmup):
            sessions[-1].run(None, feeds[-1])
    times = [[] for _ in specs]
    per_round = max(1, -(-repeats // rounds))
    for _ in range(rounds):
        for i in rng.permutation(len(specs)):
            for _ in range(per_round):
                t0 = time.perf_counter()
                sessions[i].run(None, feeds[i])
                times[i].append((time.perf_counter() - t0) * 1e3)
    return [statistics.median(t) for t in times]


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def profile(payload, threads=1, warmup=5, repeats=20, progress=True):
    """Time every unit alone and the sample networks whole (natkit calibrates the sum on them), in
    shuffled chunks that each also time the fixed cost of a run (an Identity graph)."""
    t_start = time.time()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    units, networks = payload["units"], payload.get("networks", [])
    items = [("unit", i) for i in range(len(units))] + [("net", j) for j in range(len(networks))]
    order = np.random.default_rng(0).permutation(len(items))
    table, net_ms, overheads = {}, {}, []
    for c in range(0, len(order), CHUNK):
        chunk = [items[k] for k in order[c: c + CHUNK]]
        specs = [units[i][1] if kind == "unit" else networks[i]["spec"] for kind, i in chunk] + [IDENTITY]
        ms = time_specs(specs, threads, warmup, repeats)
        overheads.append(ms[-1])
        for (kind, i), t in zip(chunk, ms):
            if kind == "unit":
                table[units[i][0]] = t
            else:
                net_ms[i] = t
        if progress:
            print(f"  {min(c + CHUNK, len(order))}/{len(order)} units and networks timed", file=sys.stderr)
    nets = [{"name": n["name"], "units": n["units"], "ms": net_ms[j]} for j, n in enumerate(networks)]
    return {"format": "natkit-latency-table", "version": 1,
            "device": {"cpu": cpu_model(), "machine": platform.machine(), "system": platform.platform(),
                       "cpu_count": os.cpu_count(), "python": platform.python_version()},
            "runtime": "onnxruntime", "onnxruntime": ort.__version__, "numpy": np.__version__,
            "threads": threads, "warmup": warmup, "repeats": repeats, "rounds": ROUNDS, "batch": 1,
            "statistic": "median",
            "overhead_ms": statistics.median(overheads), "units": table, "unit_order": [k for k, _ in units],
            "networks": nets, "loadavg_start": load,
            "loadavg_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "seconds": round(time.time() - t_start, 1), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def main(payload, argv=None):
    ap = argparse.ArgumentParser(description="time natkit's layer units with onnxruntime on this device")
    ap.add_argument("--out", required=True, help="latency table to write (JSON)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    result = profile(payload, args.threads, args.warmup, args.repeats, progress=not args.quiet)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    if not args.quiet:
        print(f"{args.out}: {len(result['units'])} units, {len(result['networks'])} networks, overhead {result['overhead_ms']:.4f} ms, "
              f"{result['seconds']} s on {result['device']['cpu']} ({args.threads} thread(s))")
    return 0
