"""Blocked fp32 chains (session 8): a float tensor between a conv2d_pw_f32 or depthwise conv2d_f32 and
readers that are all such ops (data input), with channels a multiple of 8, is kept NCHW8c
(exporters/lbpk_fpw.py float_blocked_chains: y_nchw8c on the producer, x_nchw8c on the readers;
native/src/ops/ops_conv.cpp). Each case: which tensors are blocked, ONNX Runtime within 1e-4 relative,
bitwise equality with the same package exported without chains (same sums), 1/2/3 threads bitwise
identical, and the portable path (LOWBIT_ISA=scalar) against ONNX Runtime."""

import numpy as np
import pytest

import lowbit
from lowbit.exporters import lbpk_fpw
from lowbit.exporters.lbpk_container import PackageReader
from lowbit.runtime import RuntimeStatusError
from lowbit_testutil import rewrite_manifest
from runtime_helpers import assert_rel_close, fp32_graph_case, rand_w, run_scalar_path

onnx = pytest.importorskip("onnx")
from onnx import helper  # noqa: E402

RTOL = 1e-4


def _block(x_shape, e, k, stride=1, act="Clip", residual=True, extra_reader=False, pads=None):
    """expand 1x1 (C -> e) + act -> depthwise k x k (stride, pads: k // 2 each side) + act -> project 1x1 (e -> C) [+ x]."""
    c = x_shape[1]
    inits = {"w1": rand_w(e, c, 1, 1), "b1": rand_w(e, seed=2), "w2": rand_w(e, 1, k, k, seed=3), "b2": rand_w(e, seed=4),
             "w3": rand_w(c, e, 1, 1, seed=5, scale=0.1), "b3": rand_w(c, seed=6)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["a"], kernel_shape=[1, 1])]

    def act_node(src, dst):
        if act == "Clip":
            inits["lo"], inits["hi"] = np.array(0, np.float32), np.array(6, np.float32)
            return helper.make_node("Clip", [src, "lo", "hi"], [dst])
        return helper.make_node(act, [src], [dst])

    nodes += [act_node("a", "a2"),
              helper.make_node("Conv", ["a2", "w2", "b2"], ["d"], kernel_shape=[k, k],
                               pads=pads or [k // 2] * 4,
                               strides=[stride, stride], group=e),
              act_node("d", "d2"),
              helper.make_node("Conv", ["d2", "w3", "b3"], ["p" if residual else "y"], kernel_shape=[1, 1])]
    if residual:
        nodes.append(helper.make_node("Add", ["p", "x"], ["y"]))
    outs = ("y",)
    if extra_reader:  # the depthwise input is also read by an elementwise op: it must stay NCHW
        nodes.append(helper.make_node("Relu", ["a2"], ["r"]))
        outs = ("y", "r")
    return nodes, [("x", x_shape)], inits, outs


CASES = {
    "7x7_k5_K192_e1152": _block([1, 192, 7, 7], 1152, 5),  # a 1-pixel edge panel; K blocks 128 + 64
    "14x14_k3_e480": _block([1, 80, 14, 14], 480, 3),
    "15x15_k3_s2_sigmoid": _block([1, 24, 15, 15], 48, 3, stride=2, act="Sigmoid", residual=False),  # 8x8 out
    "6x6_k5_hardswish_batch2": _block([2, 16, 6, 6], 40, 5, act="HardSwish"),
}
# tensors blocked per case: a2 (expand -> depthwise) and d2 (depthwise -> project)
BLOCKED = {"7x7_k5_K192_e1152": 2, "14x14_k3_e480": 2, "15x15_k3_s2_sigmoid": 2, "6x6_k5_hardswish_batch2": 2}


def _build(tmp_path, name, chains=True, monkeypatch=None):
    nodes, inputs, inits, outs = CASES[name]
    d = tmp_path / ("chain" if chains else "nchw")
    d.mkdir(exist_ok=True)
    if monkeypatch is not None:
        monkeypatch.setattr(lbpk_fpw, "BLOCKED_CHAINS", chains)
    return fp32_graph_case(d, name, nodes, inputs, inits, outs=outs)


def _flags(pkg):
    return [(o["kernel"], o["attrs"].get("x_nchw8c", 0), o["attrs"].get("y_nchw8c", 0))
            for o in lowbit.load(pkg).manifest["ops"] if o["kernel"].startswith("conv2d")]


@pytest.mark.parametrize("name", sorted(CASES))
def test_blocked_chain_matches_ort_threads_and_nchw(tmp_path, monkeypatch, name):
    pkg, feeds, ref = _build(tmp_path, name, True, monkeypatch)
    flags = _flags(pkg)
    assert sum(f[2] for f in flags) == BLOCKED[name] and sum(f[1] for f in flags) == BLOCKED[name], flags
    runs = {t: lowbit.load(pkg, threads=t).run(feeds)["y"] for t in (1, 2, 3)}
    assert_rel_close(runs[1], ref["y"], RTOL, name)
    for t in (2, 3):
        assert np.array_equal(runs[1], runs[t]), f"{name}: {t} threads differ from 1 thread"
    plain, _, _ = _build(tmp_path, name, False, monkeypatch)
    assert not any(f[1] or f[2] for f in _flags(plain))
    assert np.array_equal(runs[1], lowbit.load(plain, threads=1).run(feeds)["y"]), f"{name}: chain != NCHW ops"


def test_blocked_chain_portable_path(tmp_path, monkeypatch):
    """LOWBIT_ISA=scalar runs the portable blocked depthwise / pointwise code (what aarch64 runs)."""
    for name in sorted(CASES):
        (tmp_path / name).mkdir()
        pkg, feeds, ref = _build(tmp_path / name, name, True, monkeypatch)
        got, isa = run_scalar_path(pkg, feeds, tmp_path / name)
        assert "avx2" not in isa, f"{name}: the scalar run reported {isa}"
        assert_rel_close(got["y"], ref["y"], RTOL, f"scalar {name}")


def test_no_chain_across_other_readers_or_odd_channels(tmp_path, monkeypatch):
    """A tensor also read by another op, or with channels not a multiple of 8, stays NCHW."""
    monkeypatch.setattr(lbpk_fpw, "BLOCKED_CHAINS", True)
    nodes, inputs, inits, outs = _block([1, 16, 7, 7], 48, 3, extra_reader=True)
    pkg, feeds, ref = fp32_graph_case(tmp_path, "reader", nodes, inputs, inits, outs=outs)
    # a2 (read by the Relu too) stays NCHW; d2 (depthwise -> project only) is blocked
    assert _flags(pkg) == [("conv2d_pw_f32", 0, 0), ("conv2d_f32", 0, 1), ("conv2d_pw_f32", 1, 0)]
    got = lowbit.load(pkg).run(feeds)
    for o in outs:
        assert_rel_close(got[o], ref[o], RTOL, o)
    nodes, inputs, inits, outs = _block([1, 16, 7, 7], 44, 3)  # 44 channels
    pkg, feeds, ref = fp32_graph_case(tmp_path, "odd", nodes, inputs, inits, outs=outs)
    assert not any(f[1] or f[2] for f in _flags(pkg))
    assert_rel_close(lowbit.load(pkg).run(feeds)["y"], ref["y"], RTOL, "odd")


def _refused(pkg, feeds, edit, status, text):
    man = PackageReader(pkg).manifest
    edit([o for o in man["ops"] if o["kernel"].startswith("conv2d")])
    with pytest.raises(RuntimeStatusError) as ei:
        lowbit.load(rewrite_manifest(pkg.read_bytes(), man)).run(feeds)
    assert ei.value.status == status and text in str(ei.value), str(ei.value)


def test_blocked_flag_that_does_not_fit_is_a_clear_error(tmp_path):
    """x_nchw8c / y_nchw8c on channels that are not a multiple of 8, or on a conv that is neither
    depthwise nor conv2d_pw_f32: a status naming the op and what is wrong, not garbage."""
    nodes, inputs, inits, outs = _block([1, 16, 7, 7], 44, 3)
    pkg, feeds, _ = fp32_graph_case(tmp_path, "odd", nodes, inputs, inits, outs=outs)
    _refused(pkg, feeds, lambda ops: ops[2]["attrs"].update(x_nchw8c=1), "LB_ERR_SHAPE", "divisible by 8")
    _refused(pkg, feeds, lambda ops: ops[1]["attrs"].update(y_nchw8c=1), "LB_ERR_SHAPE", "divisible by 8")
    (tmp_path / "c3").mkdir()
    pkg, feeds, _ = fp32_graph_case(tmp_path / "c3", "c3", [helper.make_node("Conv", ["x", "w"], ["t"], kernel_shape=[3, 3]),
                                                            helper.make_node("Mul", ["t", "t"], ["y"])],
                                    [("x", [1, 8, 6, 6])], {"w": rand_w(8, 8, 3, 3)})
    _refused(pkg, feeds, lambda ops: ops[0]["attrs"].update(y_nchw8c=1), "LB_ERR_UNSUPPORTED", "depthwise")
    # a blocked graph output would be returned as stored: refused at load
    (tmp_path / "out").mkdir()
    pkg, feeds, _ = fp32_graph_case(tmp_path / "out", "out", nodes, inputs, inits, outs=outs)
    man = PackageReader(pkg).manifest
    last = next(o for o in man["ops"] if man["outputs"][0]["name"] in o["outputs"])
    last["attrs"]["y_nchw8c"] = 1
    with pytest.raises(RuntimeStatusError) as ei:
        lowbit.load(rewrite_manifest(pkg.read_bytes(), man))
    assert ei.value.status == "LB_ERR_FORMAT" and "graph output must be plain" in str(ei.value), str(ei.value)


@pytest.mark.qemu
def test_blocked_chain_on_aarch64(native_aarch64, tmp_path, monkeypatch):
    """The aarch64 build runs the chain (portable blocked paths) within float rounding of ONNX Runtime."""
    from lowbit_testutil import run

    pkg, feeds, ref = _build(tmp_path, "6x6_k5_hardswish_batch2", True, monkeypatch)
    np.save(tmp_path / "x.npy", feeds["x"])
    r = run(["qemu-aarch64", "-cpu", "max", native_aarch64 / "lowbit-run", "run", pkg, "--input",
             f"x={tmp_path / 'x.npy'}", "--output", tmp_path])
    assert r.returncode == 0, r.stdout + r.stderr
    assert_rel_close(np.load(tmp_path / "y.npy"), ref["y"], RTOL, "aarch64")
