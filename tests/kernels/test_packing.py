"""The Python packer (lowbit.packing) against the C++ packer and lowbit_blocks.h: byte-identical
output for every format, group size and shape tail; block sizes; errors that say what is wrong."""
import numpy as np
import pytest

from kernel_util import FORMATS, make_qw
from lowbit import packing
from lowbit.ir import QuantWeight


def _cpp_pack(nat, qw):
    fmt = packing.IR_FORMATS[qw.fmt]
    cb = None
    if fmt == "c4":
        cb = np.asarray(qw.codebook, np.float32)
    return nat.pack_weight(fmt, qw.q, qw.scale, qw.q.shape[1] if fmt == "q8" else qw.group_size,
                           zero=qw.zero, minimum=qw.minimum, codebook=cb)


@pytest.mark.parametrize("fmt,group", FORMATS)
@pytest.mark.parametrize("n,kmul", [(1, 1), (7, 2), (8, 1), (13, 3), (33, 4)])
def test_python_packer_matches_cpp(nat, fmt, group, n, kmul):
    rng = np.random.default_rng(hash((fmt, group, n, kmul)) % 2**32)
    k = (group or 32) * kmul + (5 if fmt == "int8" else 0)  # int8: K tails are padded
    qw = make_qw(fmt, n, k, group, rng, asym_zero=(n % 2 == 1))
    blob, meta = packing.pack(qw)
    assert blob.dtype == np.uint8 and blob.ndim == 1
    assert meta["bytes"] == blob.size == nat.wfmt_packed_bytes(meta["format"], n, k, meta["group"])
    np.testing.assert_array_equal(blob, _cpp_pack(nat, qw))


def test_block_sizes_match_header(nat):
    s = nat.block_sizes()
    assert s["panel_rows"] == packing.PANEL_ROWS and s["kblock"] == packing.KBLOCK
    for g in packing.GROUPS:
        assert s[f"q4_g{g}"] == packing.block_bytes("q4", g) == packing.block_bytes("c4", g)
        assert s[f"q4a_g{g}"] == packing.block_bytes("q4a", g)
        assert s[f"t2_g{g}"] == packing.block_bytes("t2", g)
    assert s["c4_lut"] == 32 and s["q8_meta"] == 8 and s["q8_quad"] == 32


def test_q4_layout_by_hand():
    # One panel, one group of 32: row r, k j -> byte (j//8)*32 + r*4 + j%4, nibble (j%8)//4.
    q = np.zeros((8, 32), np.int8) - 8  # code u = q + 8 = 0 everywhere ...
    q[2, 13] = 7                        # ... except u = 15 at row 2, k 13: chunk 1, byte 32 + 8 + 1, high
    qw = QuantWeight(fmt="int4", q=q, scale=np.full((8, 1), 0.5, np.float32), group_size=32)
    blob, _ = packing.pack(qw)
    assert blob.size == 144
    assert np.all(blob[:16].view(np.float16) == 0.5)
    codes = blob[16:]
    assert codes[32 + 8 + 1] == 0xF0 and np.count_nonzero(codes) == 1


def test_codebook_lut_rule():
    lut, s = packing.codebook_to_lut(np.array([0, .5, 1, 1.5, 2, 3, 4, 6] * 2, np.float32))
    assert s == 0.5 and lut.tolist()[:8] == [0, 1, 2, 3, 4, 6, 8, 12]
    from kernel_util import NF4
    lut, s = packing.codebook_to_lut(NF4)
    assert lut[0] == -127 and lut[-1] == 127 and np.isclose(s, 1 / 127)


def test_pack_errors_say_what():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="codes must lie"):
        packing.pack(QuantWeight(fmt="int4", q=np.full((8, 32), 9, np.int8), scale=np.ones((8, 1), np.float32), group_size=32))
    with pytest.raises(ValueError, match="group size"):
        packing.pack(make_qw("int4", 8, 96, 32, rng).__class__(fmt="int4", q=np.zeros((8, 96), np.int8),
                                                                scale=np.ones((8, 2), np.float32), group_size=48))
    with pytest.raises(ValueError, match="per output channel"):
        packing.pack(QuantWeight(fmt="int8", q=np.zeros((8, 64), np.int8), scale=np.ones((8, 2), np.float32), group_size=32))
    with pytest.raises(ValueError, match="zero point or a minimum"):
        packing.pack(QuantWeight(fmt="int4_asym", q=np.zeros((8, 32), np.int8), scale=np.ones((8, 1), np.float32), group_size=32))


def test_cpp_packer_rejects_bad_codes(nat):
    with pytest.raises(RuntimeError, match="LB_ERR_INVALID_ARG.*outside"):
        nat.pack_weight("q8", np.full((2, 32), -128, np.int8), np.ones(2, np.float32), 32)
