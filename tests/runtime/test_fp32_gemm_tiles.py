"""The fp32 GEMM's row tiles and panel chunks (session 9, native/src/ops/ops_gemm.cpp): the last 7 or 8
rows of a GEMM run as 4 + 3 / 4 + 4 row tiles instead of 6 + 1 / 6 + 2, and the panels are split into an
even number of chunks of ~8 panels (MiniLM's M = 128 GEMMs: 12 chunks of 8 for N = 1536, 4 of 6 for N =
384). Each case: ONNX Runtime within 1e-4 relative and bitwise identity for 1, 2 and 3 threads; and the
tile height never changes a sum (k in order): rows computed by 4-row tiles equal the same rows computed
by 6-row tiles, bit for bit. Shapes: M = 128 (20 x 6 + 4 + 4), 127 (+ 4 + 3), 14
(6 + 4 + 4); K = 1536 (four K blocks); N = 1536, 1000 (an edge panel), 384; weights in panels (A with >=
16 rows) and packed per run (M < 16, and Gemm with transB). Session 15: the AVX-512 kernel of full panels
(kern_avx512: one zmm per row and panel, two neighbouring full panels per call, a lone one alone) does the
AVX2 kernel's fused multiply-adds in the same order: each case under LOWBIT_ISA=avx512vnni (which must
report it) and avx2, 1 and 2 threads, bitwise equal; plus M = 100, K = 777, N = 40 (a pair of full panels
and an 8-column one) and M = 9, K = 33, N = 17 (a lone full panel and a 1-column edge), each followed by an
activation op; mf15b: a row-major weight (two MatMuls of 12 rows, too few for panels), which the AVX-512
kernel reads in place (M = 12, K = 777, N = 1000); a weight shared by MatMuls of 128 rows is stored in panels once. (The in-register activations are covered by the conv tests that
compare the ISA paths: the fused pw / dw convs call this GEMM with theirs.)"""

import numpy as np
import pytest

import lowbit
from runtime_helpers import assert_rel_close, fp32_graph_case, rand_w, run_isa_path

onnx = pytest.importorskip("onnx")
from onnx import helper  # noqa: E402

RTOL = 1e-4


def _matmul(m, k, n, seed=1):
    return ([helper.make_node("MatMul", ["x", "w"], ["t"]), helper.make_node("Add", ["t", "b"], ["y"])],
            [("x", [m, k])], {"w": rand_w(k, n, seed=seed), "b": rand_w(n, seed=seed + 1)})


CASES = {
    "m128_k384_n1536": _matmul(128, 384, 1536),
    "m128_k1536_n384": _matmul(128, 1536, 384),
    "m127_k96_n1000": _matmul(127, 96, 1000),
    "m14_k200_n1000": _matmul(14, 200, 1000),
    "m100_k777_n40_relu": (_matmul(100, 777, 40)[0][:1] + [helper.make_node("Add", ["t", "b"], ["u"]),
                                                           helper.make_node("Relu", ["u"], ["y"])],
                           [("x", [100, 777])], _matmul(100, 777, 40)[2]),
    "m9_k33_n17_sigmoid": (_matmul(9, 33, 17)[0][:1] + [helper.make_node("Add", ["t", "b"], ["u"]),
                                                        helper.make_node("Sigmoid", ["u"], ["y"])],
                           [("x", [9, 33])], _matmul(9, 33, 17)[2]),
    # a weight shared by two MatMuls of 128 rows: stored once in panels for both (test below)
    "shared_w_m128_k777_n1000": ([helper.make_node("MatMul", ["x", "w"], ["t"]), helper.make_node("Relu", ["x"], ["r"]),
                                  helper.make_node("MatMul", ["r", "w"], ["t2"]), helper.make_node("Add", ["t", "t2"], ["y"])],
                                 [("x", [128, 777])], {"w": rand_w(777, 1000, seed=8)}),
    # 12 rows (too few for panels at export): on the AVX-512 path the full panels read B in place (rows ldb
    # apart), the 8-column edge panel is packed; three K blocks (384 + 384 + 9)
    "shared_w_m12_k777_n1000": ([helper.make_node("MatMul", ["x", "w"], ["t"]), helper.make_node("Relu", ["x"], ["r"]),
                                 helper.make_node("MatMul", ["r", "w"], ["t2"]), helper.make_node("Add", ["t", "t2"], ["y"])],
                                [("x", [12, 777])], {"w": rand_w(777, 1000, seed=8)}),
    "gemm_transb_m128": ([helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)],
                         [("x", [128, 203])], {"w": rand_w(517, 203, seed=6), "b": rand_w(517, seed=7)}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_gemm_tiles_match_ort_bitwise_threads(tmp_path, name):
    pkg, feeds, ref = fp32_graph_case(tmp_path, name, *CASES[name])
    runs = {t: lowbit.load(pkg, threads=t).run(feeds)["y"] for t in (1, 2, 3)}
    assert_rel_close(runs[1], ref["y"], RTOL, name)
    for t in (2, 3):
        assert np.array_equal(runs[1], runs[t]), f"{name}: {t} threads differ from 1 thread"


def test_gemm_tile_height_keeps_sums(tmp_path):
    """M = 128 runs rows 120..127 as two 4-row tiles; M = 126 runs rows 120..125 in one 6-row tile and a
    6-row GEMM (M < 16: weights packed per run) runs rows 122..127 in one 6-row tile: same bits."""
    k, n = 384, 1000
    inits = {"w": rand_w(k, n, seed=3), "b": rand_w(n, seed=4)}
    nodes = _matmul(1, k, n)[0]
    x = np.random.default_rng(5).standard_normal((128, k)).astype(np.float32)
    out = {}
    for m, rows in ((128, slice(0, 128)), (126, slice(0, 126)), (6, slice(122, 128))):
        pkg, _, _ = fp32_graph_case(tmp_path, f"rows{m}", nodes, [("x", [m, k])], inits)
        out[m] = lowbit.load(pkg, threads=2).run({"x": x[rows]})["y"]
    assert np.array_equal(out[128][:126], out[126])
    assert np.array_equal(out[128][122:], out[6])


@pytest.mark.parametrize("name", sorted(CASES))
def test_gemm_avx512_panel_kernel_bitwise_avx2(tmp_path, name):
    if "avx512vnni" not in lowbit.native().isa_usable():
        pytest.skip("this CPU has no AVX-512 VNNI path")
    pkg, feeds, ref = fp32_graph_case(tmp_path, name, *CASES[name])
    runs = {(isa, t): run_isa_path(pkg, feeds, tmp_path, isa, t) for isa in ("avx512vnni", "avx2") for t in (1, 2)}
    assert_rel_close(runs["avx512vnni", 1][0]["y"], ref["y"], RTOL, name)
    for key, (out, isas) in runs.items():
        assert {i for i in isas if i.startswith("matmul_f32:")} == {"matmul_f32:" + key[0]}, f"{name} {key}: {isas}"
        assert np.array_equal(out["y"], runs["avx512vnni", 1][0]["y"]), f"{name} {key}: differs from avx512vnni / 1"


_SWITCH_CHILD = r"""
import sys, numpy as np, lowbit
feeds = dict(np.load(sys.argv[2]))
s = lowbit.load(sys.argv[1], threads=2)
s.enable_profiling(True)
res = {}
for isa in ("avx512vnni", "avx2", "scalar", "auto"):
    lowbit.native().isa_select(isa)
    res[isa] = s.run(feeds)["y"]
    res[isa + "_isa"] = np.array(",".join(sorted({e["isa"] for e in s.profile_events() if e["kernel"] == "matmul_f32"})))
np.savez(sys.argv[3], **res)
"""


def test_gemm_follows_isa_selected_at_run_time(tmp_path):
    """lb_isa_select (lowbit tune, the C API) switches the fp32 GEMM's path between runs of one session:
    the path is read per call, not frozen at the first one."""
    if "avx512vnni" not in lowbit.native().isa_usable():
        pytest.skip("this CPU has no AVX-512 VNNI path")
    import subprocess
    import sys

    pkg, feeds, ref = fp32_graph_case(tmp_path, "switch", *CASES["m128_k384_n1536"])
    np.savez(tmp_path / "feeds.npz", **feeds)
    r = subprocess.run([sys.executable, "-c", _SWITCH_CHILD, str(pkg), str(tmp_path / "feeds.npz"),
                        str(tmp_path / "out.npz")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    out = dict(np.load(tmp_path / "out.npz"))
    assert [str(out[k + "_isa"]) for k in ("avx512vnni", "avx2", "scalar", "auto")] == \
        ["avx512vnni", "avx2", "scalar", "avx512vnni"]
    assert np.array_equal(out["avx512vnni"], out["avx2"]) and np.array_equal(out["avx512vnni"], out["auto"])
    assert_rel_close(out["scalar"], ref["y"], RTOL, "scalar")


def test_shared_weight_stored_in_panels_once(tmp_path):
    """The exporter stores a constant weight read only by MatMuls with enough rows in the GEMM's panel layout
    once, for all of them (a repeated block or tied projections: no per-run packing); with too few rows it stays
    row-major."""
    for name, panels in (("shared_w_m128_k777_n1000", True), ("shared_w_m12_k777_n1000", False)):
        pkg, _, _ = fp32_graph_case(tmp_path, name, *CASES[name])
        man = lowbit.load(pkg).manifest
        mm = [op for op in man["ops"] if op["kernel"] == "matmul_f32"]
        assert len(mm) == 2 and mm[0]["inputs"][1] == mm[1]["inputs"][1], mm
        assert all(("b_panels" in op.get("attrs", {})) == panels for op in mm), (name, mm)
        assert (mm[0]["inputs"][1] in man["tensors"]) and (("w" in man["tensors"]) != panels), sorted(man["tensors"])
