"""Fixtures of the profiler tests: a synthetic profile with known times, a tiny .lbpk with golden
vectors. The profiler's own helpers live in profiler_helpers.py, shared ones in lowbit_testutil.py."""
from __future__ import annotations

import numpy as np
import pytest

from profiler_helpers import ISA_BEST, W1, W2, float_forward, make_events  # noqa: F401


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
            "values": {"h": {"dtype": "f32", "shape": [1, 32]}, "y": {"dtype": "f32", "shape": [1, 4]}},
            "ops": [{"name": "fc1", "op": "MatMul", "inputs": ["x", "w1"], "outputs": ["h"]},
                    {"name": "fc2", "op": "MatMul", "inputs": ["h", "w2"], "outputs": ["y"]}],
            "golden": {"inputs": {"x": "golden.in.0"}, "outputs": {"y": "golden.out.0"},
                       "values": {"h": "golden.val.h"}},
        })
    return path
