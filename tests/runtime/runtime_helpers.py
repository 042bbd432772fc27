"""Runtime test helpers and fixtures (imported by tests/runtime and tests/samples conftests): real
models exported once per test session to ONNX and to .lbpk packages (fp32), with ONNX Runtime's
outputs on the same inputs as the reference. Also re-exports the root conftest's `run`.
(A uniquely named module: pytest imports every conftest.py as the module `conftest`.)"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import importlib.util

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location("_lowbit_root_conftest_rt", Path(__file__).resolve().parents[1] / "conftest.py")
_root = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_root)
run = _root.run
ROOT = _root.ROOT


def _export_onnx(module, args, names, path: Path, output_names=None) -> Path:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        buf = io.BytesIO()
        with torch.no_grad():
            torch.onnx.export(module, args, buf, dynamo=False, input_names=names, output_names=output_names,
                              opset_version=17)
    path.write_bytes(buf.getvalue())
    return path


def ort_run(onnx_path, feeds, threads=1):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    s = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(None, feeds)))


class Built:
    """One real model: its ONNX file, fp32 package, example feeds and ONNX Runtime outputs."""

    def __init__(self, onnx_path, lbpk_path, feeds, ref):
        self.onnx = onnx_path
        self.lbpk = lbpk_path
        self.feeds = feeds
        self.ref = ref


def rand_w(*shape, seed=1, scale=0.2):
    """A float32 weight of `shape`, normal(0, scale), reproducible by seed (the fp32 conv tests' weights)."""
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def pw_conv_case(x_shape, o, act=None, bias=True):
    """(nodes, inputs, inits) for fp32_graph_case: a 1x1 Conv of x_shape's channels to `o` outputs, with or
    without a bias, then an optional activation (an ONNX op name; Clip is [0, 6]); the output is "y"."""
    from onnx import helper

    k = x_shape[1]
    nodes = [helper.make_node("Conv", ["x", "w", "b"] if bias else ["x", "w"], ["c" if act else "y"],
                              kernel_shape=[1, 1])]
    inits = {"w": rand_w(o, k, 1, 1)}
    if bias:
        inits["b"] = rand_w(o, seed=2)
    if act == "Clip":
        nodes.append(helper.make_node("Clip", ["c", "lo", "hi"], ["y"]))
        inits["lo"], inits["hi"] = np.array(0, np.float32), np.array(6, np.float32)
    elif act:
        nodes.append(helper.make_node(act, ["c"], ["y"]))
    return nodes, [("x", x_shape)], inits


def fp32_graph_case(tmp_path: Path, name: str, nodes, inputs, inits, outs=("y",), seed: int = 7):
    """A float ONNX graph of `nodes` (inputs [(name, shape)], initializers {name: array}, outputs
    `outs`) written to tmp_path, its x86-64-avx2 fp32 package, random feeds and ORT's outputs:
    (package, feeds, {output: array})."""
    from onnx import TensorProto, helper, numpy_helper

    from lowbit.exporters.lbpk import write_package
    from lowbit.importers.onnx_import import import_onnx

    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outs],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    onnx_path = tmp_path / f"{name}.onnx"
    onnx_path.write_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    rng = np.random.default_rng(seed)
    feeds = {n: rng.standard_normal(s).astype(np.float32) for n, s in inputs}
    pkg = tmp_path / f"{name}.lbpk"
    write_package(import_onnx(str(onnx_path), {n: s for n, s in inputs}), pkg, target="x86-64-avx2", scheme="fp32")
    return pkg, feeds, ort_run(onnx_path, feeds)


_SCALAR_CHILD = r"""
import sys, numpy as np, lowbit
feeds = dict(np.load(sys.argv[2]))
s = lowbit.load(sys.argv[1], threads=2)
s.enable_profiling(True)
out = s.run(feeds)
kernel = sys.argv[4]
isas = sorted({e["isa"] for e in s.profile_events() if not kernel or e["kernel"] == kernel})
np.savez(sys.argv[3], **out, __isa__=np.array(",".join(isas)))
"""


def run_scalar_path(pkg: Path, feeds, tmp_path: Path, kernel: str = ""):
    """Runs `pkg` on `feeds` in a child process with LOWBIT_ISA=scalar (the portable code a non-x86
    build runs). Returns (outputs, isas): isas is the comma-joined ISAs the profile events report,
    for the ops of `kernel` only when given."""
    import os
    import subprocess
    import sys

    np.savez(tmp_path / "feeds.npz", **feeds)
    env = dict(os.environ, LOWBIT_ISA="scalar")
    r = subprocess.run([sys.executable, "-c", _SCALAR_CHILD, str(pkg), str(tmp_path / "feeds.npz"),
                        str(tmp_path / "out.npz"), kernel], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    got = dict(np.load(tmp_path / "out.npz"))
    return got, str(got.pop("__isa__"))


_ISA_CHILD = r"""
import sys, numpy as np, lowbit
feeds = dict(np.load(sys.argv[2]))
s = lowbit.load(sys.argv[1], threads=int(sys.argv[4]))
s.enable_profiling(True)
out = s.run(feeds)
isas = sorted({e["kernel"] + ":" + e["isa"] for e in s.profile_events()})
np.savez(sys.argv[3], **out, __isa__=np.array(",".join(isas)))
"""


def run_isa_path(pkg: Path, feeds, tmp_path: Path, isa: str, threads: int):
    """Runs `pkg` on `feeds` in a child process with LOWBIT_ISA=`isa` on `threads` threads. Returns
    (outputs, ["kernel:isa", ...]): what every op's profile event says ran."""
    import os
    import subprocess
    import sys

    f = tmp_path / "feeds.npz"
    np.savez(f, **feeds)
    out = tmp_path / f"out_{Path(pkg).stem}_{isa}_{threads}.npz"
    r = subprocess.run([sys.executable, "-c", _ISA_CHILD, str(pkg), str(f), str(out), str(threads)],
                       env=dict(os.environ, LOWBIT_ISA=isa), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    got = dict(np.load(out))
    return got, str(got.pop("__isa__")).split(",")


def assert_rel_close(got, ref, rtol, what):
    """max |got - ref| / max |ref| below rtol (and equal shapes)."""
    assert got.shape == ref.shape, what
    err = np.max(np.abs(got - ref)) / max(float(np.max(np.abs(ref))), 1e-9)
    assert err < rtol, f"{what}: relative error {err:.2e}"


def lowered_kernels(nodes, inputs, inits, tmp_path: Path, name: str):
    """The runtime kernels the exporter lowers a float graph of `nodes` (output "y") to, in order."""
    from onnx import TensorProto, helper, numpy_helper

    from lowbit.exporters.lbpk import runtime_ops
    from lowbit.importers.onnx_import import import_onnx

    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return [op["kernel"] for op in runtime_ops(import_onnx(str(path), {n: s for n, s in inputs}))]


def _fused_and_plain(tmp_path: Path, monkeypatch, name: str, case):
    """`case` (nodes, inputs, inits) exported with exporters/lbpk_fpwdw.py's fusions on and off:
    (fused package, plain package, feeds, ORT's outputs)."""
    import lowbit.exporters.lbpk_fpwdw as fpwdw

    nodes, inputs, inits = case
    fused, feeds, ref = fp32_graph_case(tmp_path, name, nodes, inputs, inits)
    monkeypatch.setattr(fpwdw, "FUSE", False)
    plain, _, _ = fp32_graph_case(tmp_path, name + "_unfused", nodes, inputs, inits)
    return fused, plain, feeds, ref


def assert_fused_bitwise(tmp_path: Path, monkeypatch, name: str, case, kernel: str, rtol: float):
    """A fused float op (`kernel`, exporters/lbpk_fpwdw.py) keeps the unfused ops' per-element arithmetic:
    on every usable ISA path its output "y" is bitwise the unfused package's, 2 threads bitwise 1 thread,
    and within `rtol` relative of ONNX Runtime."""
    import lowbit

    fused, plain, feeds, ref = _fused_and_plain(tmp_path, monkeypatch, name, case)
    usable = lowbit.native().isa_usable()
    for isa in [i for i in ("scalar", "avx2", "avx512vnni") if i in usable]:
        (f1, kf), (f2, _), (u1, ku) = (run_isa_path(pkg, feeds, tmp_path, isa, t) for pkg, t in
                                       ((fused, 1), (fused, 2), (plain, 1)))
        f1, f2, u1 = f1["y"], f2["y"], u1["y"]
        assert f"{kernel}:{isa}" in kf, f"{name}: not fused or {isa} path not reported ({kf})"
        assert not any(k.startswith(kernel + ":") for k in ku), ku
        assert np.array_equal(f1, u1), f"{name} {isa}: fused differs from the two ops (max {np.abs(f1 - u1).max()})"
        assert np.array_equal(f1, f2), f"{name} {isa}: 2 threads differ from 1 thread"
        assert_rel_close(f1, ref["y"], rtol, f"{name} {isa} vs ORT")


def assert_fused_bitwise_aarch64(native_aarch64: Path, tmp_path: Path, monkeypatch, case, kernel: str, rtol: float):
    """The aarch64 build (lowbit-run under qemu) runs the fused op `kernel` with the unfused package's bits
    and ONNX Runtime's values within `rtol`."""
    from lowbit.exporters.lbpk_container import PackageReader

    fused, plain, feeds, ref = _fused_and_plain(tmp_path, monkeypatch, "arm_fused", case)
    assert kernel in PackageReader(fused).manifest["kernels"]
    np.save(tmp_path / "x.npy", feeds["x"])
    outs = []
    for pkg in (fused, plain):
        d = tmp_path / pkg.stem
        d.mkdir()
        r = run(["qemu-aarch64", "-cpu", "max", native_aarch64 / "lowbit-run", "run", pkg, "--input",
                 f"x={tmp_path / 'x.npy'}", "--output", d])
        assert r.returncode == 0, r.stdout + r.stderr
        outs.append(np.load(d / "y.npy"))
    assert np.array_equal(outs[0], outs[1]), "aarch64: fused differs from the two ops"
    assert_rel_close(outs[0], ref["y"], rtol, "aarch64 fused vs ORT")


def build_package(onnx_path: Path, feeds, out: Path, input_shapes=None) -> Built:
    from lowbit.exporters.lbpk import write_package
    from lowbit.importers.onnx_import import import_onnx

    ref = ort_run(onnx_path, feeds)
    g = import_onnx(str(onnx_path), input_shapes or {k: v.shape for k, v in feeds.items()})
    write_package(g, out, target="x86-64-avx2", scheme="fp32",
                  golden={"inputs": feeds, "outputs": ref, "rtol": 1e-3, "atol": 1e-4})
    return Built(onnx_path, out, feeds, ref)


@pytest.fixture(scope="session")
def rt_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runtime_models")


@pytest.fixture(scope="session")
def effnet(rt_dir) -> Built:
    import torch
    from lowbit import zoo

    m = zoo.efficientnet_lite0()
    x = zoo.preprocess_lite(zoo.natural_images(1))
    onnx_path = _export_onnx(m, (torch.from_numpy(x),), ["input"], rt_dir / "effnet.onnx", ["logits"])
    return build_package(onnx_path, {"input": x}, rt_dir / "effnet.lbpk")


@pytest.fixture(scope="session")
def minilm(rt_dir) -> Built:
    import torch
    from lowbit import zoo

    enc = zoo.MiniLMEncoder()
    feeds = zoo.minilm_feeds(zoo.sentences(1), seq_len=32)[0]
    args = (torch.from_numpy(feeds["input_ids"]), torch.from_numpy(feeds["attention_mask"]))
    onnx_path = _export_onnx(enc, args, ["input_ids", "attention_mask"], rt_dir / "minilm.onnx", ["embedding"])
    return build_package(onnx_path, feeds, rt_dir / "minilm.lbpk")


@pytest.fixture(scope="session")
def ppocr_det(rt_dir) -> Built:
    from lowbit import zoo

    from skimage import data
    from skimage.transform import resize

    page = resize(data.page(), (160, 320), order=1, anti_aliasing=True)  # a scanned page of text
    x = np.repeat(((page.astype(np.float32) - 0.5) / 0.5)[None, None], 3, axis=1).copy()
    return build_package(zoo.ppocr_paths()["det"], {"x": x}, rt_dir / "det.lbpk")
