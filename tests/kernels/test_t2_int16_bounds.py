"""The ternary kernels keep a whole group's products in int16 sums (the AVX2 GEMV sums a group of
up to 128 k in two int16 lanes, one of them 4x scaled): at the extremes (every code +1 or -1, every
activation +-127) the result must still be exact on every ISA path, for every group size."""
import numpy as np
import pytest

from kernel_util import packed_dequant
from lowbit import packing
from lowbit.quant.weights import QuantWeight


@pytest.mark.parametrize("group", [32, 64, 128])
@pytest.mark.parametrize("m", [1, 3])
@pytest.mark.parametrize("sign", [1, -1])
def test_ternary_extremes_are_exact(nat, group, m, sign):
    n, k = 24, group * 3
    q = np.full((n, k), sign, np.int8)
    q[5] = -sign            # one row of the opposite sign
    q[7, ::2] = 0           # and one with zeros
    qw = QuantWeight(fmt="ternary", q=q, scale=np.ones((n, k // group), np.float32), group_size=group)
    x = np.full((m, k), 127, np.float32)
    if m > 1:
        x[1] = -127
    blob, meta = packing.pack(qw)
    lin = nat.QLinear(blob, meta["format"], meta["n"], meta["k"], meta["group"])
    want = (x.astype(np.float64) @ packed_dequant(qw).astype(np.float64).T).astype(np.float32)
    for isa in nat.isa_usable():
        y, info = lin(x, isa=isa)
        np.testing.assert_array_equal(y, want, err_msg=f"{isa} {info['kernel']}")
