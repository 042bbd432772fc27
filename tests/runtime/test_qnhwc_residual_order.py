"""A residual Add of two convs of the same chain value (Add(conv_a(y), conv_b(y)), the second conv after
the first in the graph) folds into the conv that runs *second*: its epilogue must read a value that
already exists. Folding it into the first one wrote a package whose manifest had an op read a value
produced later ('... reads c13.y.nhwc, which no input, constant or earlier op defines'), found by
qconv10 in session 10."""
import numpy as np
import pytest

import lowbit
from lowbit.exporters.lbpk import runtime_ops
from test_qnhwc_chain import _Builder, _packages


@pytest.mark.parametrize("swap", [False, True])
def test_add_of_two_convs_of_one_value(tmp_path, swap):
    b = _Builder(21)
    y = b.conv("x", 8, 16, 3, act="clip")
    y = b.conv(y, 16, 16, 3, dw=True, act="clip")
    p, q = b.conv(y, 16, 24, 1), b.conv(y, 16, 24, 1, scale=0.05)
    out = b.add(q, p) if swap else b.add(p, q)
    out = b.conv(out, 24, 8, 1)
    gr = b.graph(("N", 8, 13, 11), [out])
    kernels = [o["kernel"] for o in runtime_ops(gr)]
    assert "add" not in kernels, kernels  # still folded, into the conv that runs second
    new, old = _packages(gr, tmp_path)
    x = np.random.default_rng(3).standard_normal((1, 8, 13, 11)).astype(np.float32)
    got = lowbit.load(new, threads=2).run({"x": x})[out]
    ref = lowbit.load(old).run({"x": x})[out]
    assert np.array_equal(got, ref)
