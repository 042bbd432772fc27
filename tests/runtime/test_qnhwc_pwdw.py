"""qconv2d_nhwc_q8_pwdw: an expansion 1x1 and the depthwise conv reading it, run in row strips (docs/runtime.md,
"Session 13 (qz13)"; docs/package-format.md 6.2). The fused op runs both convs' own operations on the expanded rows of
each strip (kept in a per-thread buffer), so a package with it must give bitwise the outputs of the same package without
it, at 1 and 2 threads and under LOWBIT_ISA=scalar / avx2 / avx512vnni: strides 1 / 2, 3x3 / 5x5, dilation,
asymmetric pads, odd sizes, padded channel strides (E = 40, 144), batch 2, --smooth multipliers on the expanded value,
7-bit weights, strips that start in the top pad and end in the bottom one."""
import os
import subprocess
import sys

import numpy as np
import pytest

import lowbit
from lowbit.exporters import lbpk_nhwc
from lowbit.exporters.lbpk import write_package
from lowbit.ir import TensorInfo
from test_qnhwc_chain import _Builder

CASES = [
    dict(E=96, k=3, stride=2, H=41, W=37, act="clip", smooth=True),
    dict(E=144, k=3, stride=1, H=30, W=29, act="relu", res=True),
    dict(E=40, k=5, stride=2, H=33, W=31, act="clip", pad=[1, 2, 2, 1], qmax=63),
    dict(E=64, k=3, stride=1, H=27, W=45, act=None, dil=2, res=True),
    dict(E=96, k=5, stride=1, H=9, W=70, act="clip", pad=[2, 1, 0, 3]),
    dict(E=144, k=3, stride=2, H=7, W=200, act="relu"),  # one output row per strip (rows of 32 KB)
    dict(E=144, k=3, stride=1, H=6, W=200, act="clip"),
]


def _graph(case, seed=0):
    b = _Builder(seed, case.get("qmax"))
    b.smooth = case.get("smooth", False)
    H, W, E, k, s = case["H"], case["W"], case["E"], case["k"], case["stride"]
    r0 = b.conv("x", 3, 16, 3, act="clip")  # 3x3 s1 stem (im2col): H x W x 16
    y = b.conv(r0, 16, E, 1, act=case["act"])
    b.graph_vi = {f"c2.{t}": TensorInfo(f"c2.{t}", "float32", (1, E, H, W)) for t in "ya"}
    d = case.get("dil", 1)
    y = b.conv(y, E, E, k, stride=s, dw=True, act="clip", dil=d, pad=case.get("pad"), smooth=True)
    y = b.conv(y, E, 16, 1)
    if case.get("res"):
        y = b.add(y, r0)
    gr = b.graph(("N", 3, H, W), [y])
    gr.value_info = dict(b.graph_vi)
    return gr, y


def _write(gr, path, fuse, target):
    old = lbpk_nhwc._PWDW_MIN_BYTES
    lbpk_nhwc._PWDW_MIN_BYTES = 0 if fuse else 1 << 62
    try:
        return write_package(gr, path, target=target, scheme="w8a8")
    finally:
        lbpk_nhwc._PWDW_MIN_BYTES = old


_CHILD = r"""
import sys, numpy as np, lowbit
x = np.load(sys.argv[2])
out = {}
for th in (1, 2):
    s = lowbit.load(sys.argv[1], threads=th)
    out.update({f"{k}@{th}": v for k, v in s.run({"x": x}).items()})
    s.enable_profiling(True); s.run({"x": x})
    print(th, sorted({(e["kernel"], e["isa"]) for e in s.profile_events() if e["kernel"] == "qconv2d_nhwc_q8_pwdw"}))
np.savez(sys.argv[3], **out)
"""


def _run(pkg, x, tmp_path, isa, tag):
    env = dict(os.environ)
    env.pop("LOWBIT_ISA", None)
    if isa:
        env["LOWBIT_ISA"] = isa
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / f"y_{tag}_{isa}.npz"
    r = subprocess.run([sys.executable, "-c", _CHILD, str(pkg), str(tmp_path / "x.npy"), str(out)], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return dict(np.load(out)), r.stdout


@pytest.mark.parametrize("ci", range(len(CASES)))
def test_pwdw_bitwise_equal_to_two_ops(tmp_path, ci):
    case = CASES[ci]
    gr, y = _graph(case, seed=ci)
    target = "x86-64-avx2" if case.get("qmax") else "auto"
    fused = _write(gr, tmp_path / "fused.lbpk", True, target)
    plain = _write(gr, tmp_path / "plain.lbpk", False, target)
    kf = [o["kernel"] for o in lowbit.load(fused).manifest["ops"]]
    kp = [o["kernel"] for o in lowbit.load(plain).manifest["ops"]]
    assert kf.count("qconv2d_nhwc_q8_pwdw") == 1 and len(kf) == len(kp) - 1, kf
    assert "qconv2d_nhwc_q8_pwdw" not in kp
    x = np.random.default_rng(ci).standard_normal((2, 3, case["H"], case["W"])).astype(np.float32)  # batch 2
    ref, _ = _run(plain, x, tmp_path, None, "plain")
    assert max(np.abs(v).max() for v in ref.values()) > 0.5
    for isa in ("scalar", "avx2", None):
        got, info = _run(fused, x, tmp_path, isa, "fused")
        want = "scalar" if isa == "scalar" else "avx2" if isa == "avx2" else None
        if want:
            assert f"'{want}'" in info, (isa, info)
        for k in ref:
            assert np.array_equal(got[k], ref[k]), (isa, k, np.max(np.abs(got[k] - ref[k])))


def test_pwdw_needs_value_info_and_size(tmp_path):
    """Without the expanded value's shape, or below the size limit, the two convs stay two ops."""
    gr, _ = _graph(CASES[0])
    assert "qconv2d_nhwc_q8_pwdw" not in [o["kernel"] for o in lowbit.load(
        _write(gr, tmp_path / "a.lbpk", False, "auto")).manifest["ops"]]
    gr.value_info = {}
    assert "qconv2d_nhwc_q8_pwdw" not in [o["kernel"] for o in lowbit.load(
        _write(gr, tmp_path / "b.lbpk", True, "auto")).manifest["ops"]]
