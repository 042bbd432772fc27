"""Depthwise border pixels of qconv2d_nhwc_q8 (ops_qnhwc.cpp, conv_run): a tap outside the image reads the row of
zero points; the tap pointers of a border pixel come from a mask of the taps inside (session 13, qz13b), those of
a conv with more than 64 taps from the per-tap tests. Maps smaller than the kernel (every tap pattern, rows and
columns with no tap inside), pads larger than the kernel's reach, asymmetric pads, strides 1-3, dilation 2-3, 9x9
(81 taps), batch 2, under LOWBIT_ISA=avx512vnni / avx2 / scalar at 1 and 2 threads: the same bits as the unchained
package (qconv2d_f32: padding as zeros of x - z)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import lowbit
from test_qnhwc_chain import _CHILD_ISA, _Builder, _packages


@pytest.mark.parametrize("hw", [(3, 4), (7, 7), (11, 6)])
def test_depthwise_border_pixels_bitwise(tmp_path, hw):
    b = _Builder(41)
    y = b.conv("x", 3, 32, 1, act="relu")
    y = b.conv(y, 32, 32, 5, dw=True, act="clip")                          # 5x5 pad 2 (a map below the kernel)
    y = b.conv(y, 32, 32, 3, dw=True, pad=[3, 0, 1, 4], act="relu")        # asymmetric pads, one past the reach
    y = b.conv(y, 32, 32, 3, dw=True, dil=3, stride=2, pad=[2, 3, 3, 2])   # dilation 3, stride 2
    y = b.conv(y, 32, 48, 1, act="relu")
    y = b.conv(y, 48, 48, 9, dw=True, act="clip")                          # 81 taps (the per-tap tests)
    y = b.conv(y, 48, 48, 5, dw=True, dil=2, stride=3, pad=[4, 2, 5, 4])   # dilation 2, stride 3
    y = b.conv(y, 48, 16, 1)
    gr = b.graph(("N", 3, "H", "W"), [y])
    new, old = _packages(gr, tmp_path)
    x = np.random.default_rng(42).standard_normal((2, 3) + hw).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    ref = lowbit.load(old, threads=1).run({"x": x})
    assert np.abs(ref[y]).max() > 0.01
    for isa, threads in (("avx512vnni", 1), ("avx512vnni", 2), ("avx2", 1), ("avx2", 2), ("scalar", 1)):
        if isa == "avx512vnni" and "avx512vnni" not in lowbit.native().isa_usable():
            continue
        out = tmp_path / f"y_{isa}_{threads}.npz"
        r = subprocess.run([sys.executable, "-c", _CHILD_ISA, str(new), str(tmp_path / "x.npy"), str(out), str(threads)],
                           env=dict(os.environ, LOWBIT_ISA=isa), capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        got = dict(np.load(out))
        for k in ref:
            assert np.array_equal(got[k], ref[k]), (isa, threads, k, np.max(np.abs(got[k] - ref[k])))
