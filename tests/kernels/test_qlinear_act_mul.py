"""qlinear with per-channel activation multipliers (act_mul: the --smooth divisors' inverses, applied
to x before it is quantized) and static int8 activations: every ISA path gives the same bits for 8-bit
and 7-bit weights (the 7-bit AVX2 GEMM reads pre-flipped activations; K = 1100 runs two K chunks),
and the result is the float product of the smoothed x within the quantization error."""
import numpy as np
import pytest

from lowbit import packing
from lowbit.ir import QuantWeight


@pytest.mark.parametrize("qmax", [127, 63])
@pytest.mark.parametrize("m,n,k", [(9, 40, 96), (33, 136, 1100)])
def test_act_mul_static_same_bits_on_every_path(nat, qmax, m, n, k):
    rng = np.random.default_rng(m + n + k + qmax)
    q = rng.integers(-qmax, qmax + 1, size=(n, k)).astype(np.int8)
    scale = rng.uniform(0.005, 0.02, size=(n, 1)).astype(np.float32)
    blob, meta = packing.pack(QuantWeight(fmt="int8", q=q, scale=scale, group_size=k))
    lin = nat.QLinear(blob, meta["format"], meta["n"], meta["k"], meta["group"])
    x = rng.uniform(-2, 2, size=(m, k)).astype(np.float32)
    mul = rng.uniform(0.5, 1.2, k).astype(np.float32)  # |x * mul| / act_scale <= 60 codes: no clipping
    act_scale, act_zero = 0.04, -9
    bias = rng.standard_normal(n).astype(np.float32)
    outs = {}
    for isa in nat.isa_usable():
        y, info = lin(x, bias, act="static", act_scale=act_scale, act_zero=act_zero, isa=isa, act_mul=mul)
        outs[isa] = (y, info["kernel"])
    first = next(iter(outs.values()))[0]
    for isa, (y, kern) in outs.items():
        np.testing.assert_array_equal(y, first, err_msg=f"{isa} {kern}")
    want = (x * mul) @ (q.astype(np.float32) * scale).T + bias
    err = np.abs(first - want).max()
    bound = 0.5 * act_scale * np.abs(q.astype(np.float32) * scale).sum(1).max()  # half a code per input
    assert err <= bound, (err, bound)
    with pytest.raises(ValueError, match="act_mul"):
        lin(x, bias, act="static", act_scale=act_scale, act_zero=act_zero, act_mul=mul[:-1])
