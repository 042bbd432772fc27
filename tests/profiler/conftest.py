"""Fixtures of the profiler tests: a synthetic event stream with known times, a tiny .lbpk with
golden vectors, and a fake runtime Session (numpy) that emits per-op events, so the whole
profiler is exercised without depending on the state of the runtime."""
from __future__ import annotations

import time

import numpy as np
import pytest

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


@pytest.fixture
def device():
    return {"id": "0123456789abcdef", "cpu_model": "Test CPU", "arch": "x86_64", "features": ["avx2"], "cores": 2,
            "threads_used": 2, "governor": None, "isa_best": ISA_BEST, "isa_active": ISA_BEST, "lowbit_version": "0.1.0"}


@pytest.fixture
def roofline():
    return {"read_gbps": 10.0, "int8_gops": 100.0, "isa": "avx2", "threads": 2, "source": "test"}


@pytest.fixture
def synthetic_report(device, roofline):
    from lowbit.profiler import build_report, numeric_gap

    runs = [make_events(i) for i in range(5)]
    e2e = [4_100_000 + i * 1_000 for i in range(5)]  # 0.1 ms outside the ops per run
    ref = np.linspace(-1, 1, 512)
    gaps = {"fc1": numeric_gap(ref, ref + 0.01), "relu": numeric_gap(ref, ref), "fc2": numeric_gap(ref, ref + 0.1)}
    return build_report(runs, e2e, device=device, roofline=roofline, package={"name": "tiny", "sha256": "ab" * 32},
                        config={"runs": 5, "warmup": 1, "threads": 2}, gaps=gaps,
                        memory={"weights_bytes": 136192, "arena_bytes": 4096})


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


class FakeSession:
    """Stands in for lowbit.runtime.Session: numpy ops, per-op events when profiling is on."""

    def __init__(self, scalar_fc2=False):
        self.profiling = False
        self._events = []
        self.scalar_fc2 = scalar_fc2

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

    def run_all_values(self, feed):
        return quant_forward(feed["x"])

    def run(self, feed):
        self._events = []
        x = feed["x"]
        ref = quant_forward(x)
        h = self._op("fc1", "MatMul", "lb_gemv_f32_q8d_q8c_4x32__avx2", "avx2", lambda: ref["h"], 16 * 32, 2 * 16 * 32)
        k2 = ("lb_gemv_f32_q8d_q8c__ref", "scalar") if self.scalar_fc2 else ("lb_gemv_f32_q8d_q8c_4x32__avx2", "avx2")
        y = self._op("fc2", "MatMul", k2[0], k2[1], lambda: h @ np.ones((32, 4), np.float32) * 0 + ref["y"], 32 * 4, 2 * 32 * 4)
        return {"y": y}


@pytest.fixture
def tiny_package(tmp_path):
    from lowbit.exporters.lbpk_container import PackageWriter

    x = np.random.default_rng(3).standard_normal((1, 16)).astype(np.float32)
    ref = float_forward(x)
    path = tmp_path / "tiny.lbpk"
    with PackageWriter(path) as w:
        w.add_tensor("w1", W1)
        w.add_tensor("w2", W2)
        w.add_tensor("golden.in.0", x)
        w.add_tensor("golden.out.0", ref["y"])
        w.add_tensor("golden.val.h", ref["h"])
        w.manifest.update({
            "kind": "graph", "model": "tiny_mlp", "scheme": "w8a32", "target": "x86-64-avx2",
            "inputs": [{"name": "x", "dtype": "f32", "shape": [1, 16]}],
            "outputs": [{"name": "y", "dtype": "f32", "shape": [1, 4]}],
            "ops": [{"name": "fc1", "op": "MatMul", "inputs": ["x", "w1"], "outputs": ["h"]},
                    {"name": "fc2", "op": "MatMul", "inputs": ["h", "w2"], "outputs": ["y"]}],
            "golden": {"inputs": {"x": "golden.in.0"}, "outputs": {"y": "golden.out.0"},
                       "values": {"h": "golden.val.h"}},
        })
    return path
