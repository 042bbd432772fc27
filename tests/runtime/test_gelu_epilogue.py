"""The GELU epilogue of matmul_f32 / qlinear_f32 (attr post "gelu", native/src/ops/gelu_fast.h: a rational
erf on a clamped range) against the exact erf GELU in float64, over a dense range of inputs that covers the
clamp (|x| > 5.54), the far negative tail and the vector tail: the AVX2 path and the portable one
(LOWBIT_ISA=scalar). The GEMM in front is an identity MatMul, so the epilogue sees the inputs exactly."""
from __future__ import annotations

import math

import numpy as np

from runtime_helpers import fp32_graph_case, run_scalar_path

K = 64


def _case(tmp_path):
    from onnx import helper

    nodes = [helper.make_node("MatMul", ["x", "eye"], ["d"]),
             helper.make_node("Mul", ["d", "rsqrt2"], ["h0"]), helper.make_node("Erf", ["h0"], ["h1"]),
             helper.make_node("Add", ["h1", "one"], ["h2"]), helper.make_node("Mul", ["d", "h2"], ["h3"]),
             helper.make_node("Mul", ["h3", "half"], ["y"])]
    inits = {"eye": np.eye(K, dtype=np.float32), "rsqrt2": np.array(1 / np.sqrt(2.0), np.float32),
             "one": np.array(1.0, np.float32), "half": np.array(0.5, np.float32)}
    rows = 67  # 67 x 64 values: a row count that is not a multiple of any tile
    pkg, _, _ = fp32_graph_case(tmp_path, "gelu_epi", nodes, [("x", [1, rows, K])], inits)
    x = np.linspace(-9.0, 9.0, rows * K).astype(np.float32)
    x[:7] = [0.0, -0.0, 1e-30, -1e-30, 5.53, -5.56, 30.0]
    return pkg, {"x": x.reshape(1, rows, K)}


def _check(got, x, what):
    ref = np.array([0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))) for v in x.astype(np.float64).reshape(-1)])
    err = np.abs(got.reshape(-1).astype(np.float64) - ref)
    bound = 2.5e-7 * np.abs(x.reshape(-1).astype(np.float64)) + 1e-7
    worst = int(np.argmax(err - bound))
    assert np.all(err <= bound), f"{what}: x={x.reshape(-1)[worst]} err {err[worst]:.3g} > {bound[worst]:.3g}"


def test_gelu_epilogue_exact_erf(tmp_path):
    import lowbit

    pkg, feeds = _case(tmp_path)
    s = lowbit.load(pkg)
    ops = [(op["kernel"], op["attrs"].get("post")) for op in s.manifest["ops"]]
    assert ops == [("matmul_f32", "gelu")], ops
    fast = s.run(feeds)["y"]
    _check(fast, feeds["x"], "avx2")
    got, isas = run_scalar_path(pkg, feeds, tmp_path, "matmul_f32")
    assert isas == "scalar", isas
    _check(got["y"], feeds["x"], "scalar")
    # the same bits on both paths (the portable one does the same fused multiply-adds): a GELU output is
    # requantized by the next int8 linear, where one ulp can flip a code
    np.testing.assert_array_equal(got["y"], fast)
