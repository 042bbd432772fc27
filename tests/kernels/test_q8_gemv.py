"""q8_gemv through the bindings, on every usable ISA path, against numpy (exact int32)."""
import numpy as np
import pytest

SHAPES = [(1, 1), (7, 3), (4, 64), (33, 100), (128, 4096), (5, 1023)]


@pytest.mark.parametrize("n,k", SHAPES)
def test_q8_gemv_matches_numpy(nat, n, k):
    rng = np.random.default_rng(n * 1000 + k)
    w = rng.integers(-127, 128, size=(n, k), dtype=np.int8)
    x = rng.integers(-128, 128, size=k, dtype=np.int8)
    want = w.astype(np.int32) @ x.astype(np.int32)
    for isa in nat.isa_usable():
        got = nat.q8_gemv(w, x, isa=isa)
        np.testing.assert_array_equal(got, want, err_msg=f"isa={isa} n={n} k={k}")


def test_q8_gemv_shape_error(nat):
    with pytest.raises(ValueError, match="expected w"):
        nat.q8_gemv(np.zeros((2, 3), np.int8), np.zeros(4, np.int8))


def test_unknown_isa_rejected(nat):
    with pytest.raises(ValueError, match="unknown ISA"):
        nat.q8_gemv(np.zeros((2, 3), np.int8), np.zeros(3, np.int8), isa="sse9")
