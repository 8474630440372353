"""Hardware benchmarks: device latency tables validated against measured onnxruntime latency; int8."""
