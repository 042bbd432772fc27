"""TVM writer on x86: lowered to Relax with int4 decoded inside the matmul kernels, compiled for the
x86-64-avx2 profile, run through the TVM runtime and checked against the numpy reference."""
from __future__ import annotations

import json

import numpy as np
import pytest

from lowbit import LowbitError
from lowbit.ir import Graph, Node, TensorInfo
from tvm_graphs import conv_graph, mlp_graph, reference

from lowbit.exporters import tvm as tvm_writer

PROFILE = "x86-64-avx2"
GRAPHS = {
    "int4-int8": lambda: mlp_graph(("int4", "int8")),
    "nf4-ternary": lambda: mlp_graph(("nf4", "ternary"), act=("static", "dynamic"), seed=1),
    "asym-outliers-fp4": lambda: mlp_graph(("int4_asym", "fp4"), act=(None, None), seed=2, outliers=24),
    "conv-int4": lambda: conv_graph("int4"),
}


def _max_rel_err(out, ref):
    return float(np.max(np.abs(out - ref)) / max(np.max(np.abs(ref)), 1e-12))


@pytest.mark.parametrize("key", sorted(GRAPHS))
def test_tvm_x86_matches_reference(tvm_artifact, key):
    graph, path = tvm_artifact(key, GRAPHS[key], PROFILE)
    model = tvm_writer.load_tvm(path)
    tol = model.manifest["tolerance"]["max_abs_err_rel_to_max"]
    for seed in (0, 1):
        x = np.random.default_rng(100 + seed).standard_normal(graph.inputs[0].shape).astype(np.float32)
        out = model.run({"x": x})
        ref = reference(graph, {"x": x})
        for name in ref:
            err = _max_rel_err(out[name], ref[name])
            assert err <= tol, f"{key} output {name}: max rel err {err:.3g} > {tol}"
    # The manifest describes the artifact.
    m = json.loads((path / "manifest.json").read_text())
    assert m["profile"] == PROFILE and m["arch"] == "x86_64" and m["tvm_target"]["mcpu"] == "haswell"
    assert m["inputs"][0]["shape"] == list(graph.inputs[0].shape)
    assert m["quant_kernels"], "no fused quantized kernel was emitted"


def test_tvm_x86_matches_lowbit_refexec(tvm_artifact):
    refexec = pytest.importorskip("lowbit.refexec")
    graph, path = tvm_artifact("int4-int8", GRAPHS["int4-int8"], PROFILE)
    x = np.random.default_rng(7).standard_normal(graph.inputs[0].shape).astype(np.float32)
    out = tvm_writer.load_tvm(path).run({"x": x})["y"]
    ref = refexec.RefExecutor(graph).run({"x": x})["y"]
    assert _max_rel_err(out, ref) <= tvm_writer.TOLERANCE["max_abs_err_rel_to_max"]


@pytest.mark.parametrize("fmt", ["int4", "nf4", "ternary"])
def test_weights_are_decoded_inside_the_matmul_kernel(fmt):
    """No [N, K] float weight exists anywhere: the packed codes and scales are the kernel's
    parameters and the fused PrimFunc reads them in its reduction."""
    import tvm
    from tvm import relax

    from lowbit.exporters.tvm_lower import lower
    from lowbit.exporters.tvm_opencl import _global_allocs

    graph = mlp_graph((fmt, "int8"), k=64, hidden=32, out=16)
    n, k = graph.initializers["w1"].shape
    mod, qk = lower(graph)
    lmod = tvm_writer.legalize(mod, tvm_writer.tvm_target(__import__("lowbit.targets").targets.load(PROFILE)), gpu=False)
    weight_shapes = {(n, k), (k, n)}
    fused = []
    for gv, func in lmod.functions.items():
        if isinstance(func, relax.Function):
            continue
        shapes = [tuple(int(d) for d in p.shape) for p in func.params]
        for name, info in _global_allocs(func).items():
            assert tuple(info["shape"]) not in weight_shapes, f"{gv.name_hint} materialises {name} {info}"
        if f"q{fmt}_matmul" in gv.name_hint:
            fused.append(gv.name_hint)
            per_byte = {"int4": 2, "nf4": 2, "ternary": 4}[fmt]
            assert (k // per_byte, n) in shapes, f"{gv.name_hint} params {shapes} lack the packed codes"
            assert all(s not in weight_shapes for s in shapes), f"{gv.name_hint} takes a float weight {shapes}"
            assert any(str(p.dtype) == "uint8" for p in func.params)
    assert fused, f"no q{fmt}_matmul kernel in {[gv.name_hint for gv in lmod.functions]}"
    # And no call in main produces a tensor of the weight's shape (no separate dequantize op).
    for block in lmod["main"].body.blocks:
        for b in block.bindings:
            ty = b.value.ty_args[0] if getattr(b.value, "ty_args", None) else None
            if ty is not None and hasattr(ty, "shape"):
                assert tuple(int(d) for d in ty.shape) not in weight_shapes


def test_packing_round_trips_every_format():
    from lowbit.exporters.tvm_quant import FORMATS, pack
    from tvm_graphs import quant_weight

    rng = np.random.default_rng(3)
    for fmt in FORMATS:
        w = quant_weight(rng, 5, 64, fmt)
        pw = pack(w)
        data = pw.data.T  # stored K-major
        if fmt == "int8":
            codes = data.astype(np.int16)
        else:
            bits = 8 // pw.per_byte
            codes = np.stack([(data >> (bits * j)) & ((1 << bits) - 1) for j in range(pw.per_byte)], -1)
            codes = codes.reshape(5, -1)[:, :64].astype(np.int16)
            codes -= {"int4": 8, "ternary": 1}.get(fmt, 0)
        assert np.array_equal(codes, w.q.astype(np.int16)), fmt
        assert pw.nbytes < w.q.size * 4 / 3  # far smaller than float weights


def test_unsupported_op_names_the_node(tmp_path):
    g = Graph("bad", [Node("NonMaxSuppression", "nms_7", ["x"], ["y"])],
              [TensorInfo("x", "float32", (2, 4))], [TensorInfo("y", "float32", (2, 4))])
    with pytest.raises(LowbitError, match="NonMaxSuppression.*nms_7"):
        tvm_writer.write_tvm(g, tmp_path / "out", PROFILE)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()
    with pytest.raises(LowbitError, match="unknown target"):
        tvm_writer.write_tvm(mlp_graph(), tmp_path / "out", "pixel-99")
    with pytest.raises(LowbitError, match="writes a folder"):
        tvm_writer.write_tvm(mlp_graph(), tmp_path / "model.so", PROFILE)


def test_gpu_artifact_refuses_to_load_on_cpu(tvm_artifact):
    _, path = tvm_artifact("int4-int8", GRAPHS["int4-int8"], "android-mali")
    with pytest.raises(LowbitError, match="cannot run on this"):
        tvm_writer.load_tvm(path)


def test_cpu_schedule_vectorises_the_quantized_matmul():
    """The CPU rule must really apply (it once failed silently and TVM ran 30x slower): the fused
    decode-matmul has its init split off, a vectorised output loop and a parallel outer loop."""
    from tvm import tirx

    from lowbit import targets
    from lowbit.exporters.tvm_lower import lower

    graph = mlp_graph(("int4", "int8"), m=16, k=64, hidden=32, out=16)
    mod, _ = lower(graph)
    lmod = tvm_writer.legalize(mod, tvm_writer.tvm_target(targets.load(PROFILE)), gpu=False)
    text = {gv.name_hint: f.script() for gv, f in lmod.functions.items() if isinstance(f, tirx.PrimFunc)}
    q = [t for name, t in text.items() if "qint4_matmul" in name]
    assert q, list(text)
    assert "T.vectorized" in q[0] and "_init" in q[0] and "T.parallel" in q[0]
