"""The AVX-512 VNNI group-format GEMM (lb::avx512::ugemm, mm_avx512.h: w4a8 Q4 / Q4A, t2a8 T2,
codebook C4; session 16) at the sizes where its blocking changes: row tiles of 8 (M not a multiple:
the short last tile repeats its first row), 16-column pairs (an odd panel, N tails), k blocks of 512
(a short last block, K = one group), row chunks of ~640 KB of laid-out activations (several chunks),
and the int32 dots at the ends of their range (C4: the table values + 128 as unsigned bytes and the
dot started at -128 s). Integer-valued cases exact against numpy on every ISA path; random cases
bitwise equal to the AVX2 GEMM (the same integer dots and float operations in the same order) on 1
and 2 threads."""
import numpy as np
import pytest

from kernel_util import exact_case, make_qw, packed_dequant, qlinear
from lowbit.ir import QuantWeight

FMTS = [("int4", 32), ("int4", 64), ("int4", 128), ("int4_asym", 32), ("int4_asym", 128), ("ternary", 32),
        ("ternary", 128), ("nf4", 64), ("fp4", 32), ("cb4", 128)]
# (m, n, k): 1-row tail with one group; 7 rows, 9 columns (an odd panel); 8 + 1 rows, an N tail of 1;
# 17 rows, K 544 (a short second k block); 139 rows x 4160 (2 row chunks, 9 k blocks, the last of 64)
SHAPES = [(2, 1, 128), (7, 9, 256), (9, 17, 512), (17, 40, 544), (139, 24, 4160)]


def _need_vnni(nat):
    if "avx512vnni" not in nat.isa_usable():
        pytest.skip("no AVX-512 VNNI on this machine")


@pytest.mark.parametrize("fmt,group", [f for f in FMTS if f[0] != "cb4"])
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_shapes_exact(nat, fmt, group, m, n, k):
    if k % group:
        pytest.skip("group does not divide K")
    rng = np.random.default_rng(m * 131 + n * 7 + k + group)
    qw, x, bias, want = exact_case(fmt, n, k, group, m, rng)
    lin = qlinear(nat, qw)
    for isa in nat.isa_usable():
        y, info = lin(x, bias, isa=isa)
        np.testing.assert_array_equal(y, want, err_msg=f"{isa} {info['kernel']}")


@pytest.mark.parametrize("fmt,group", FMTS)
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_shapes_bitwise_avx2(nat, fmt, group, m, n, k):
    _need_vnni(nat)
    if k % group:
        pytest.skip("group does not divide K")
    rng = np.random.default_rng(m * 17 + n + k * 3 + group)
    qw = make_qw(fmt, n, k, group, rng)
    x = (rng.standard_normal((m, k)) * rng.uniform(0.01, 20, (m, 1))).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    lin = qlinear(nat, qw)
    want, _ = lin(x, bias, isa="avx2")
    for pool in (None, nat.ThreadPool(2)):
        y, info = lin(x, bias, isa="avx512vnni", pool=pool)
        assert info["isa"] == "avx512vnni" and "gemm" in info["kernel"]
        assert y.tobytes() == want.tobytes(), f"{info['kernel']} {'2 threads' if pool else '1 thread'}"


@pytest.mark.parametrize("fmt", ["int4", "int4_asym", "cb4"])
@pytest.mark.parametrize("sign", [1, -1])
def test_dot_extremes(nat, fmt, sign):
    """Codes at the end of their range (C4: the largest-magnitude table entry, |w| = 127 after
    packing: byte 255 or 1) against activations +-127 over groups of 128: the largest int32 dots
    the GEMM makes (C4 ~2^21); against the AVX2 GEMM, bitwise."""
    _need_vnni(nat)
    n, k, m, g = 24, 1024, 10, 128
    kw = {}
    if fmt == "int4":
        q = np.full((n, k), 7 if sign > 0 else -8, np.int8)
    elif fmt == "int4_asym":
        q = np.full((n, k), 15, np.int8)
        kw["minimum"] = np.full((n, k // g), -3.0, np.float32)
    else:
        cb = np.linspace(-1, 1, 16).astype(np.float32)
        q = np.full((n, k), 0 if sign > 0 else 15, np.int8)
        kw["codebook"] = cb
    qw = QuantWeight(fmt=fmt, q=q, scale=np.ones((n, k // g), np.float32), group_size=g, **kw)
    x = np.full((m, k), 127.0, np.float32)
    x[1::2, 3::5] = -127.0
    lin = qlinear(nat, qw)
    want, _ = lin(x, isa="avx2")
    y, info = lin(x, isa="avx512vnni")
    assert "gemm" in info["kernel"]
    assert y.tobytes() == want.tobytes(), info["kernel"]
    if fmt != "cb4":
        np.testing.assert_array_equal(y, (x.astype(np.float64) @ packed_dequant(qw).astype(np.float64).T).astype(np.float32))


@pytest.mark.parametrize("fmt,group", FMTS)
def test_two_threads_pre_laid_tiles(nat, fmt, group):
    """qlinear lays out the rows' tiles once per call for the 2-thread column tasks (lb_mm_args::xg /
    xgm: a weight over the row split's 4 MiB, so the call splits columns); 1 thread's kernel lays
    out its own. Bitwise equal for M = 2 / 9 / 32 / 128 (M = 9: a short last tile)."""
    _need_vnni(nat)
    n, k = 2056, 2048  # kp x n > 4 MiB: 16 column tasks at 2 threads, no row split
    rng = np.random.default_rng(group + len(fmt))
    lin = qlinear(nat, make_qw(fmt, n, k, group, rng))
    bias = rng.standard_normal(n).astype(np.float32)
    pool = nat.ThreadPool(2)
    for m in (2, 9, 32, 128):
        x = (rng.standard_normal((m, k)) * rng.uniform(0.01, 20, (m, 1))).astype(np.float32)
        want, _ = lin(x, bias, isa="avx512vnni")
        y, info = lin(x, bias, isa="avx512vnni", pool=pool)
        assert "gemm" in info["kernel"] and info["tasks"] >= 8, info
        assert y.tobytes() == want.tobytes(), f"{info['kernel']} m={m}"


@pytest.mark.parametrize("m", [96, 100])
def test_two_threads_pre_laid_tiles_row_tasks(nat, m):
    """A narrow, long weight (8 panels, kp x n > 4 MiB): 2-thread column and row tasks; M = 96 tasks start
    on tile boundaries (rows 0 / 48: the pre-laid tiles), M = 100 at rows 34 / 68 (the kernel lays
    out those itself). Bitwise equal to 1 thread."""
    _need_vnni(nat)
    n, k = 64, 65536 + 4096
    rng = np.random.default_rng(m)
    lin = qlinear(nat, make_qw("int4", n, k, 32, rng))
    x = rng.standard_normal((m, k)).astype(np.float32)
    want, _ = lin(x, isa="avx512vnni")
    y, info = lin(x, isa="avx512vnni", pool=nat.ThreadPool(2))
    assert info["tasks"] > 2, info
    assert y.tobytes() == want.tobytes()
