"""qlinear through the bindings on every usable ISA path: the activation quantizer bit-exact
against its numpy definition, integer-valued cases exact against numpy, random cases within a
named tolerance of the dequantized product, and outputs bitwise identical for 1-4 threads."""
import numpy as np
import pytest

from kernel_util import FORMATS, act_block, exact_case, make_qw, packed_dequant, qlinear
from lowbit import packing
from lowbit_testutil import ISA_INCLUDES

# |y - ref| <= REL_TOL * (|x_hat| @ |W|^T) + ABS_TOL, with x_hat the dequantized int8 activations
REL_TOL = 1e-4
ABS_TOL = 1e-5


@pytest.mark.parametrize("k", [1, 31, 32, 100, 4096])
@pytest.mark.parametrize("block,per_row", [(32, False), (64, True), (0, True)])
def test_quantizer_matches_numpy_definition(nat, k, block, per_row):
    rng = np.random.default_rng(k)
    x = (rng.standard_normal((3, k)) * rng.uniform(0.01, 30)).astype(np.float32)
    x[1] = 0
    kp = -(-k // 32) * 32
    block = block or kp
    if kp % block:
        pytest.skip("block does not divide K")
    q0, d0, s0 = packing.quantize_activations(x, block, per_row)
    for isa in nat.isa_usable():
        q, d, s = nat.quantize_act(x, block, per_row, isa=isa)
        np.testing.assert_array_equal(q, q0, err_msg=isa)
        np.testing.assert_array_equal(d, d0, err_msg=isa)
        np.testing.assert_array_equal(s, s0, err_msg=isa)


@pytest.mark.parametrize("fmt,group", FORMATS)
@pytest.mark.parametrize("m", [1, 2, 5, 16])
def test_exact_on_integer_data(nat, fmt, group, m):
    """Unit scales and integer activations with a +-127 in every block: the result is an integer
    computed exactly by every ISA path (bitwise-identical integer accumulators)."""
    rng = np.random.default_rng(m * 100 + (group or 1))
    n, k = 37, (group or 32) * 4 if fmt != "int8" else 200
    qw, x, bias, want = exact_case(fmt, n, k, group, m, rng)
    lin = qlinear(nat, qw)
    for isa in nat.isa_usable():
        y, info = lin(x, bias, isa=isa)
        np.testing.assert_array_equal(y, want, err_msg=f"{isa} {info['kernel']}")
        assert info["isa"] in ISA_INCLUDES[isa] and ("gemv" if m == 1 else "gemm") in info["kernel"]


@pytest.mark.parametrize("fmt,group", FORMATS)
@pytest.mark.parametrize("m", [1, 3, 17])
@pytest.mark.parametrize("act", ["dynamic", "row", "float"])
def test_random_within_tolerance(nat, fmt, group, m, act):
    if act == "float" and fmt not in ("int4", "int4_asym"):
        pytest.skip("float activations run with int4 weights only")
    rng = np.random.default_rng(m + 7 * (group or 1))
    n, k = 45, (group or 32) * 3 if fmt != "int8" else 77
    qw = make_qw(fmt, n, k, group, rng)
    x = rng.standard_normal((m, k)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    w = packed_dequant(qw).astype(np.float64)
    if act == "float":
        xh = x.astype(np.float64)
    else:
        blk = act_block(qw)
        q, d, _ = packing.quantize_activations(x, blk, per_row=(act == "row" or fmt == "int8"))
        xh = (q.reshape(m, -1, blk) * d[:, :, None]).reshape(m, -1)[:, :k].astype(np.float64)
    want = xh @ w.T + bias
    bound = REL_TOL * (np.abs(xh) @ np.abs(w).T + np.abs(bias)) + ABS_TOL
    lin = qlinear(nat, qw)
    for isa in nat.isa_usable():
        y, info = lin(x, bias, act=act, isa=isa)
        err = np.abs(y - want)
        assert np.all(err <= bound), f"{isa} {info['kernel']}: max err {err.max():g} at {np.unravel_index(err.argmax(), err.shape)}"


def test_static_int8_activations(nat):
    rng = np.random.default_rng(3)
    qw = make_qw("int8", 24, 96, 0, rng)
    x = rng.uniform(-1, 1, (4, 96)).astype(np.float32)
    scale, zp = np.float32(0.01), 3
    q = np.clip(np.rint(x * (np.float32(1) / scale)) + zp, -128, 127)
    want = ((q - zp) * scale).astype(np.float64) @ packed_dequant(qw).astype(np.float64).T
    lin = qlinear(nat, qw)
    for isa in nat.isa_usable():
        y, info = lin(x, act="static", act_scale=scale, act_zero=zp, isa=isa)
        np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4, err_msg=isa)


@pytest.mark.parametrize("fmt,group", [("int8", 0), ("int4", 32), ("int4_asym", 64), ("nf4", 64), ("ternary", 128)])
@pytest.mark.parametrize("m", [1, 64])
def test_bitwise_identical_for_any_thread_count(nat, fmt, group, m):
    rng = np.random.default_rng(11)
    qw = make_qw(fmt, 200, 512, group, rng)
    x = rng.standard_normal((m, 512)).astype(np.float32)
    lin = qlinear(nat, qw)
    pools = [None] + [nat.ThreadPool(t) for t in (2, 3, 4)]
    for isa in nat.isa_usable():
        ys = [lin(x, pool=p, isa=isa)[0] for p in pools]
        for t, y in zip((2, 3, 4), ys[1:]):
            assert y.tobytes() == ys[0].tobytes(), f"{isa}: {t} threads differ from 1"
    if fmt in ("int4", "int4_asym"):
        ys = [lin(x, act="float", pool=p)[0] for p in pools]
        assert all(y.tobytes() == ys[0].tobytes() for y in ys)


def test_errors_name_the_problem(nat):
    rng = np.random.default_rng(0)
    blob, meta = packing.pack(make_qw("int4", 8, 64, 32, rng))
    with pytest.raises(RuntimeError, match="LB_ERR_FORMAT"):
        nat.QLinear(blob[:-1], "q4", 8, 64, 32)
    lin = nat.QLinear(blob, "q4", 8, 64, 32)
    with pytest.raises(RuntimeError, match="LB_ERR_UNSUPPORTED"):
        lin(np.zeros((1, 64), np.float32), act="static", act_scale=1.0)
    with pytest.raises(ValueError, match="K = 64"):
        lin(np.zeros((1, 63), np.float32))
