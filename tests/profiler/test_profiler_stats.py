"""The profiler's arithmetic against values worked out by hand."""
import math

import numpy as np
import pytest

from lowbit.profiler import stats


def test_summarize_percentiles():
    s = stats.summarize([float(v) for v in range(1, 101)])
    assert s["n"] == 100 and s["min"] == 1.0 and s["max"] == 100.0
    assert s["median"] == pytest.approx(50.5)
    assert s["p95"] == pytest.approx(95.05)  # linear interpolation between the 95th and 96th value
    assert stats.summarize([])["median"] is None


def test_numeric_gap_known_values():
    ref = np.array([3.0, 4.0, 0.0, 0.0])
    got = ref + np.array([0.0, 0.0, 0.5, 0.0])
    g = stats.numeric_gap(ref, got)
    assert g["snr_db"] == pytest.approx(10 * math.log10(25 / 0.25))  # 20 dB
    assert g["cosine"] == pytest.approx(5.0 / math.sqrt(25.25))
    assert g["max_abs_err"] == pytest.approx(0.5)
    assert g["max_rel_err"] == pytest.approx(0.5 / 4.0)
    assert g["exact"] is False


def test_numeric_gap_exact_orthogonal_and_shape():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    g = stats.numeric_gap(x, x.copy())
    assert g["exact"] and g["snr_db"] is None and g["cosine"] == pytest.approx(1.0) and g["max_abs_err"] == 0
    o = stats.numeric_gap([1.0, 0.0], [0.0, 1.0])
    assert o["cosine"] == pytest.approx(0.0) and o["snr_db"] == pytest.approx(10 * math.log10(1 / 2))
    with pytest.raises(ValueError):
        stats.numeric_gap([1.0, 2.0], [1.0])


def test_roofline_memory_and_compute_bound():
    # Device: 10 GB/s, 100 GOPS -> ridge at 10 ops/byte.
    mem = stats.roofline_point(bytes_moved=1e6, ops=2e6, seconds=0.5e-3, read_gbps=10.0, peak_gops=100.0)
    assert mem["bound"] == "memory"
    assert mem["gbps"] == pytest.approx(2.0) and mem["gops"] == pytest.approx(4.0)
    assert mem["attainable_gops"] == pytest.approx(20.0)  # 2 ops/byte * 10 GB/s
    assert mem["fraction"] == pytest.approx(0.2)
    comp = stats.roofline_point(bytes_moved=1e5, ops=1e8, seconds=2e-3, read_gbps=10.0, peak_gops=100.0)
    assert comp["bound"] == "compute" and comp["fraction"] == pytest.approx(0.5)
    # An op that only moves bytes is judged against the bandwidth.
    copy = stats.roofline_point(bytes_moved=5e6, ops=0, seconds=1e-3, read_gbps=10.0, peak_gops=100.0)
    assert copy["bound"] == "memory" and copy["fraction"] == pytest.approx(0.5)
    # Unknown device: rates but no fraction.
    unk = stats.roofline_point(1e6, 2e6, 1e-3, None, None)
    assert unk["gbps"] == pytest.approx(1.0) and unk["fraction"] is None


def test_kernel_name_grammar():
    p = stats.parse_kernel_name("lb_gemm_f32_q8d_q4c32_4x16__avx512vnni")
    assert p == {"op": "gemm", "out": "f32", "act": "q8d", "weight": "q4c32", "tile": "4x16", "isa": "avx512vnni"}
    r = stats.parse_kernel_name("lb_gemv_s32_q8_q8c__ref")
    assert r["tile"] is None and r["isa"] == "ref"
    assert stats.parse_kernel_name("conv2d_f32") is None
    assert stats.is_float_kernel("lb_gemm_f32_f32_f32_4x16__avx2")
    assert not stats.is_float_kernel("lb_gemm_f32_q8d_q4c32_4x16__avx2")
    assert stats.is_scalar_kernel("lb_gemv_s32_q8_q8c__ref", "scalar")
    assert not stats.is_scalar_kernel("lb_gemv_s32_q8_q8c_4x32__avx2", "avx2")
