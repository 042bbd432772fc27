"""7-bit int8 weights (codes within +-64, lowbit_blocks.h LB_Q8_W7_MAX): qlinear recognises them
when the weight is loaded and runs the gemm_q7 family (the AVX2 vpmaddubsw kernel with unsigned
activations; the Q8 GEMM on the other paths), exactly: integer-valued cases equal numpy on every
ISA path, including static activations whose codes reach -128, tails of rows / columns / K, and
several K chunks and L2 panel blocks. One code past +-64 keeps the 8-bit kernel."""
import numpy as np
import pytest

from lowbit import packing
from lowbit.ir import QuantWeight
from lowbit.quant import weights as wq

Q7_AVX2 = "lb_gemm_f32_q8d_q7c_4x16__avx2"


def _qw(q: np.ndarray, scale=None) -> QuantWeight:
    n, k = q.shape
    s = np.ones((n, 1), np.float32) if scale is None else scale
    return QuantWeight(fmt="int8", q=q.astype(np.int8), scale=s, group_size=k)


def _lin(nat, qw):
    blob, meta = packing.pack(qw)
    return nat.QLinear(blob, meta["format"], meta["n"], meta["k"], meta["group"])


def _codes7(rng, n, k):
    q = rng.integers(-64, 65, size=(n, k))
    q[0, 0], q[-1, -1] = 64, -64  # both ends of the range
    return q


def _expect_kernel(isa, info, q7: bool):
    if isa == "avx2":
        assert (info["kernel"] == Q7_AVX2) == q7, info
    if isa == "scalar":
        assert info["kernel"] == ("lb_gemm_f32_q8d_q7c__ref" if q7 else "lb_gemm_f32_q8d_q8c__ref"), info


@pytest.mark.parametrize("m,n,k", [(2, 37, 100), (5, 8, 32), (13, 200, 1100), (128, 24, 64), (7, 530, 96),
                                   (6, 272, 1100), (7, 20, 2100), (3, 44, 200), (11, 48, 300)])
def test_exact_on_integer_data(nat, m, n, k):
    """Unit scales, integer activations with a +-127 per row: every path equals numpy exactly.
    (13, 200, 1100): two K chunks of 1024 and two L2 panel blocks; 530 columns: an odd panel.
    qlinear passes the activations pre-flipped (lb_mm_args::xu), so on AVX2 the shapes with several
    K chunks or L2 blocks run the direct 4 x 3 tiles: (6, 272, 1100) ends on 34 = 30 + 4 panels
    (4 = two pairs) with a 2-row tile, (7, 20, 2100) on 3 panels and a 3-row tile. Every shape runs
    the direct path on AVX2 (small K too); (3, 44, 200) and (11, 48, 300) end on the 3-row asm tile
    (two groups of 3 panels; at 44 columns the last panel is partial)."""
    rng = np.random.default_rng(m * 1000 + n + k)
    q = _codes7(rng, n, k)
    x = rng.integers(-127, 128, size=(m, k)).astype(np.float32)
    x[:, 0] = 127
    bias = rng.integers(-20, 20, size=n).astype(np.float32)
    want = (x.astype(np.float64) @ q.astype(np.float64).T + bias).astype(np.float32)
    lin = _lin(nat, _qw(q))
    for isa in nat.isa_usable():
        y, info = lin(x, bias, isa=isa)
        np.testing.assert_array_equal(y, want, err_msg=f"{isa} {info['kernel']}")
        _expect_kernel(isa, info, True)


@pytest.mark.parametrize("n,k", [(40, 200), (24, 1100)])
def test_static_activations_with_codes_at_minus_128(nat, n, k):
    """Static zero point: u = q + 128 spans the whole byte range (q = -128 -> 0, 127 -> 255);
    k = 1100: the AVX2 kernel's direct path (two K chunks)."""
    rng = np.random.default_rng(5)
    q = _codes7(rng, n, k)
    zp = -7
    x = rng.integers(-140, 140, size=(6, k)).astype(np.float32)  # codes clamp at -128 and 127
    codes = np.clip(x + zp, -128, 127)
    want = ((codes - zp).astype(np.float64) @ q.astype(np.float64).T).astype(np.float32)
    lin = _lin(nat, _qw(q))
    for isa in nat.isa_usable():
        y, info = lin(x, act="static", act_scale=1.0, act_zero=zp, isa=isa)
        np.testing.assert_array_equal(y, want, err_msg=f"{isa} {info['kernel']}")
        _expect_kernel(isa, info, True)


def test_one_code_past_64_keeps_the_8bit_kernel(nat):
    rng = np.random.default_rng(9)
    for bad in (65, -65, 127, -127):
        q = _codes7(rng, 19, 70)
        q[-1, -1] = bad  # the last code of the last row: the scan must read every panel
        x = rng.integers(-127, 128, size=(4, 70)).astype(np.float32)
        x[:, 0] = -127
        want = (x.astype(np.float64) @ q.astype(np.float64).T).astype(np.float32)
        lin = _lin(nat, _qw(q))
        for isa in nat.isa_usable():
            y, info = lin(x, isa=isa)
            np.testing.assert_array_equal(y, want, err_msg=f"{isa} {info['kernel']}")
            _expect_kernel(isa, info, False)


def test_random_within_tolerance_and_thread_determinism(nat):
    rng = np.random.default_rng(13)
    n, k, m = 264, 1056, 64  # 33 panels, two K chunks: the AVX2 direct path
    q = _codes7(rng, n, k)
    scale = rng.uniform(0.001, 0.05, (n, 1)).astype(np.float32)
    x = rng.standard_normal((m, k)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    xq, d, _ = packing.quantize_activations(x, -(-k // 32) * 32, True)
    xhat = xq[:, :k].astype(np.float64) * d.reshape(m, -1)[:, :1]
    wd = q.astype(np.float64) * scale
    want = xhat @ wd.T + bias
    bound = 1e-4 * (np.abs(xhat) @ np.abs(wd).T + np.abs(bias)) + 1e-5
    lin = _lin(nat, _qw(q, scale))
    pools = [None] + [nat.ThreadPool(t) for t in (2, 3)]
    for isa in nat.isa_usable():
        ys = [lin(x, bias, pool=p, isa=isa) for p in pools]
        _expect_kernel(isa, ys[0][1], True)
        assert np.all(np.abs(ys[0][0] - want) <= bound), isa
        for t, (y, _) in zip((2, 3), ys[1:]):
            assert y.tobytes() == ys[0][0].tobytes(), f"{isa}: {t} threads differ from 1"


def test_quantizer_writes_7bit_codes_and_profiles_choose_them(nat):
    import lowbit.targets as targets

    rng = np.random.default_rng(2)
    w = rng.standard_normal((48, 96)).astype(np.float32)
    q8 = wq.quantize_rtn(w, "int8", 0)
    q7 = wq.quantize_rtn(w, "int8", 0, int8_qmax=wq.QMAX_INT8_7BIT)
    assert np.abs(q8.q).max() == 127 and np.abs(q7.q).max() == 63
    np.testing.assert_allclose(q7.scale, np.abs(w).max(axis=1, keepdims=True) / 63, rtol=1e-6)
    err8 = np.abs(q8.q * q8.scale - w).max(axis=1)
    err7 = np.abs(q7.q * q7.scale - w).max(axis=1)
    assert np.all(err7 <= q7.scale[:, 0] / 2 + 1e-7) and np.all(err8 <= q8.scale[:, 0] / 2 + 1e-7)
    if "avx2" in nat.isa_usable():
        x = rng.standard_normal((4, 96)).astype(np.float32)
        assert _lin(nat, q7)(x, isa="avx2")[1]["kernel"] == Q7_AVX2
        assert _lin(nat, q8)(x, isa="avx2")[1]["kernel"] != Q7_AVX2
    assert wq.weight_bits7_for(targets.load("x86-64-avx2"))
    assert not wq.weight_bits7_for(targets.load("x86-64-avx512vnni"))
    assert not wq.weight_bits7_for(targets.load("arm64-cortex-a76"))
    assert not wq.weight_bits7_for(None)


def test_export_option_weight_bits7(tmp_path):
    """prepare(..., weight_bits7=True) writes int8 weights within +-63, False the full +-127; the default
    "auto" follows the host's target profile (7 bits on x86 without VNNI); a bad value is refused by name."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    import lowbit.targets as targets
    from lowbit import LowbitError
    from lowbit.export_api import prepare

    rng = np.random.default_rng(4)
    w = rng.standard_normal((64, 48)).astype(np.float32)
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 64])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 48])],
                          initializer=[numpy_helper.from_array(w, "w")])
    path = tmp_path / "mm.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    calib = [{"x": rng.standard_normal((2, 64)).astype(np.float32)} for _ in range(4)]

    def codes(**kw):
        _, qg, _, _ = prepare(str(path), scheme="w8a8", calib=calib, progress=False, **kw)
        qws = [v for v in qg.initializers.values() if isinstance(v, QuantWeight)]
        assert len(qws) == 1
        return int(np.abs(qws[0].q).max())

    assert codes(weight_bits7=False) == 127
    assert codes(weight_bits7=True) == 63
    assert codes() == codes(weight_bits7="auto") == (63 if wq.weight_bits7_for(targets.detect()) else 127)
    with pytest.raises(LowbitError, match="weight_bits7"):
        codes(weight_bits7="yes")
