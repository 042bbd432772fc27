"""The w8a8 GEMM with its activations tiled once per call (lb_mm_args::xt: on several threads qlinear writes the
rows in the AVX-512 VNNI kernel's 12-row tiles while it quantizes them, and every column task of every thread reads
that one copy): integer-valued cases equal numpy exactly on every ISA path, and the outputs are bitwise identical
for 1-3 threads. At 2-3 threads the shapes reach the column split with xt (large weights, or M below the row
split's), the row split (small weights, M >= 48: no xt) and the row-task split of a large weight with few columns,
whose tasks start on rows that are not a multiple of 12 (the kernel tiles those itself)."""
import numpy as np
import pytest

from lowbit import packing
from lowbit.ir import QuantWeight

VNNI_GEMM = "lb_gemm_f32_q8d_q8c_8x16__avx512vnni"


def _lin(nat, q):
    n, k = q.shape
    qw = QuantWeight(fmt="int8", q=q.astype(np.int8), scale=np.ones((n, 1), np.float32), group_size=k)
    blob, meta = packing.pack(qw)
    return nat.QLinear(blob, meta["format"], meta["n"], meta["k"], meta["group"])


# (m, n, k): small weights (row split at 2-3 threads when m >= 48); 4.2-4.5 MB weights (column split, with
# xt); (100, 120, 36000): 15 panels, under 8 per thread, so three row tasks of 34 rows (m0 = 34, 68)
@pytest.mark.parametrize("m,n,k", [(2, 37, 100), (13, 200, 1100), (25, 530, 96), (64, 200, 512),
                                   (128, 1030, 4100), (37, 1100, 4096), (100, 120, 36000)])
def test_exact_and_thread_determinism(nat, m, n, k):
    rng = np.random.default_rng(m * 7 + n + k)
    q = rng.integers(-127, 128, size=(n, k))
    q[:, 0] = 127
    # small activations with a 127 per row: scale 1, sums below 2^24, so the float result is exact
    x = rng.integers(-8, 9, size=(m, k)).astype(np.float32)
    x[:, -1] = 127
    bias = rng.integers(-20, 20, size=n).astype(np.float32)
    want = (x.astype(np.float64) @ q.astype(np.float64).T + bias).astype(np.float32)
    lin = _lin(nat, q)
    pools = [None] + [nat.ThreadPool(t) for t in (2, 3)]
    for isa in nat.isa_usable():
        ys = [lin(x, bias, pool=p, isa=isa) for p in pools]
        np.testing.assert_array_equal(ys[0][0], want, err_msg=f"{isa} {ys[0][1]['kernel']}")
        if isa == "avx512vnni":
            assert ys[0][1]["kernel"] == VNNI_GEMM
        for t, (y, _) in zip((2, 3), ys[1:]):
            assert y.tobytes() == ys[0][0].tobytes(), f"{isa}: {t} threads differ from 1 ({m}x{n}x{k})"
