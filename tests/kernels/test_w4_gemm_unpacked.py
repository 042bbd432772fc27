"""The w4a8 / t2a8 GEMMs at the sizes where the AVX2 kernel (lb::avx2::ugemm: codes unpacked to
int8 panels per k block of 2048, chunks of 132 rows, 6 x 2 register tiles with 4- and 2-row tails,
activations flipped to u8 by qlinear in rows padded by 64 bytes) changes its blocking: several k
blocks, several row chunks, an odd panel at the end. Integer-valued cases are exact against numpy
on every ISA path, the int16 sums hold at the code and activation extremes, and the result does
not depend on the thread count."""
import numpy as np
import pytest

from kernel_util import act_block, make_qw, packed_dequant
from lowbit import packing
from lowbit.quant.weights import QuantWeight
from lowbit_testutil import ISA_INCLUDES


def _qlinear(nat, qw):
    blob, meta = packing.pack(qw)
    return nat.QLinear(blob, meta["format"], meta["n"], meta["k"], meta["group"])


def _exact(nat, qw, x, bias):
    want = (x.astype(np.float64) @ packed_dequant(qw).astype(np.float64).T + bias).astype(np.float32)
    lin = _qlinear(nat, qw)
    for isa in nat.isa_usable():
        y, info = lin(x, bias, isa=isa)
        np.testing.assert_array_equal(y, want, err_msg=f"{isa} {info['kernel']}")
        assert info["isa"] in ISA_INCLUDES[isa] and "gemm" in info["kernel"]


@pytest.mark.parametrize("fmt,group,m,n,k", [
    ("int4", 32, 139, 21, 4160),       # 3 k blocks (the last 64 k), 2 row chunks (132 + 7), an odd last panel
    ("int4", 64, 13, 16, 4096),        # k = 4096: the padded activation rows; 6 + 6 + 1 rows
    ("int4_asym", 128, 9, 40, 2304),   # 6 + 3 rows, 2 pairs + 1 panel
    ("ternary", 128, 20, 24, 4352),    # 128-k int16 sums, 3 k blocks
    ("ternary", 32, 2, 8, 2080),       # one panel, 2 rows
])
def test_blocked_shapes_exact(nat, fmt, group, m, n, k):
    rng = np.random.default_rng(m * 1000 + n + group)
    qw = make_qw(fmt, n, k, group, rng, exact=True)
    x = rng.integers(-127, 128, size=(m, k)).astype(np.float32)
    x[:, ::act_block(qw)] = 127  # every activation block quantizes with scale 1
    bias = rng.integers(-20, 20, size=n).astype(np.float32)
    _exact(nat, qw, x, bias)


@pytest.mark.parametrize("code", [-8, 7])
@pytest.mark.parametrize("sign", [1, -1])
def test_int4_extremes_exact(nat, code, sign):
    """Every code at an end of its range and every activation +-127 (u8 255 or 1): the int16 lane
    sums of the unpacked tiles reach 16 * 255 * 8 and must stay exact."""
    n, k, m = 16, 2048 + 64, 7
    q = np.full((n, k), code, np.int8)
    qw = QuantWeight(fmt="int4", q=q, scale=np.ones((n, k // 32), np.float32), group_size=32)
    x = np.full((m, k), 127.0 * sign, np.float32)
    x[1::2, 5::7] = -127.0 * sign
    _exact(nat, qw, x, np.zeros(n, np.float32))


def test_blocked_shape_any_thread_count(nat):
    rng = np.random.default_rng(5)
    qw = make_qw("int4", 48, 4160, 32, rng)
    x = rng.standard_normal((139, 4160)).astype(np.float32)
    lin = _qlinear(nat, qw)
    pools = [None] + [nat.ThreadPool(t) for t in (2, 3)]
    for isa in nat.isa_usable():
        ys = [lin(x, pool=p, isa=isa)[0] for p in pools]
        for t, y in zip((2, 3), ys[1:]):
            assert y.tobytes() == ys[0].tobytes(), f"{isa}: {t} threads differ from 1"
