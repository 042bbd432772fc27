"""Helpers of the profiler tests (a synthetic event stream with known times, a fake runtime
Session in numpy), importable by name from the tests: conftest.py is not importable reliably
because every test folder's conftest is a module named `conftest`."""
from __future__ import annotations

import time

import numpy as np

ISA_BEST = "avx2"


def make_events(run_index: int = 0):
    """Three ops with exact nanosecond stamps: 2 ms, 1 ms and 1 ms (+ run_index µs jitter on op a)."""
    t = 1_000_000_000 + run_index * 10_000_000
    a = {"name": "fc1", "type": "MatMul", "kernel": "lb_gemv_f32_q8d_q8c_4x32__avx2", "isa": "avx2",
         "shapes": {"inputs": [[1, 256], [256, 512]], "outputs": [[1, 512]]},
         "start_ns": t, "end_ns": t + 2_000_000 + run_index * 1_000,
         "bytes_read": 256 * 512 + 256, "bytes_written": 512 * 4, "int_ops": 2 * 256 * 512, "float_ops": 0}
    b = {"name": "relu", "type": "Relu", "kernel": "", "isa": "", "shapes": {"inputs": [[1, 512]], "outputs": [[1, 512]]},
         "start_ns": a["end_ns"], "end_ns": a["end_ns"] + 1_000_000,
         "bytes_read": 2048, "bytes_written": 2048, "int_ops": 0, "float_ops": 512}
    c = {"name": "fc2", "type": "MatMul", "kernel": "lb_gemv_s32_q8_q8c__ref", "isa": "scalar",
         "shapes": {"inputs": [[1, 512], [512, 10]], "outputs": [[1, 10]]},
         "start_ns": b["end_ns"], "end_ns": b["end_ns"] + 1_000_000,
         "bytes_read": 5120 + 512, "bytes_written": 40, "int_ops": 2 * 512 * 10, "float_ops": 0}
    return [a, b, c]


# ---- a tiny package and a fake runtime session ------------------------------------------------

W1 = np.random.default_rng(1).standard_normal((16, 32)).astype(np.float32)
W2 = np.random.default_rng(2).standard_normal((32, 4)).astype(np.float32)


def float_forward(x):
    h = np.maximum(x @ W1, 0)
    return {"h": h, "y": h @ W2}


def quant_forward(x):
    def q(w):
        s = np.abs(w).max(axis=0) / 127
        return np.round(w / s) * s
    h = np.maximum(x @ q(W1), 0).astype(np.float32)
    return {"h": h, "y": (h @ q(W2)).astype(np.float32)}


def load_fake(path, scalar_fc2=False):
    """A FakeSession for a package file: it returns the graph outputs its manifest lists."""
    from lowbit.exporters.lbpk_container import PackageReader

    r = PackageReader(path, verify=False)
    try:
        outputs = [o["name"] for o in r.manifest["outputs"]]
    finally:
        r.close()
    return FakeSession(scalar_fc2=scalar_fc2, outputs=outputs)


class FakeSession:
    """Stands in for lowbit.runtime.Session: numpy ops, per-op events when profiling is on."""

    def __init__(self, scalar_fc2=False, outputs=("y",)):
        self.profiling = False
        self._events = []
        self.scalar_fc2 = scalar_fc2
        self.outputs = tuple(outputs)  # the package's graph outputs ("h" too in a values copy)

    def set_profiling(self, on):
        self.profiling = bool(on)

    def profile_events(self):
        return list(self._events)

    def _op(self, name, typ, kernel, isa, fn, nbytes, ops):
        t0 = time.perf_counter_ns()
        out = fn()
        t1 = time.perf_counter_ns()
        if self.profiling:
            self._events.append({"name": name, "type": typ, "kernel": kernel, "isa": isa, "shapes": {},
                                 "start_ns": t0, "end_ns": t1, "bytes_read": nbytes, "bytes_written": 64,
                                 "int_ops": ops, "float_ops": 0, "quantized": typ == "MatMul"})
        return out

    def run(self, feed):
        self._events = []
        x = feed["x"]
        ref = quant_forward(x)
        h = self._op("fc1", "MatMul", "lb_gemv_f32_q8d_q8c_4x32__avx2", "avx2", lambda: ref["h"], 16 * 32, 2 * 16 * 32)
        k2 = ("lb_gemv_f32_q8d_q8c__ref", "scalar") if self.scalar_fc2 else ("lb_gemv_f32_q8d_q8c_4x32__avx2", "avx2")
        y = self._op("fc2", "MatMul", k2[0], k2[1], lambda: h @ np.ones((32, 4), np.float32) * 0 + ref["y"], 32 * 4, 2 * 32 * 4)
        return {k: {"h": h, "y": y}[k] for k in self.outputs}


def save_tiny_onnx(path):
    """The float ONNX twin of the tiny package (MatMul W1, Relu, MatMul W2), saved at `path`."""
    import onnx  # noqa: PLC0415
    from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415

    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["a"]), helper.make_node("Relu", ["a"], ["h"]),
         helper.make_node("MatMul", ["h", "w2"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(W1, "w1"), numpy_helper.from_array(W2, "w2")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path
