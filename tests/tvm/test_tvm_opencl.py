"""TVM's OpenCL kernels for the Adreno and Mali profiles, run on PoCL through pyopencl and
checked against the numpy reference (the same kernels a phone's OpenCL driver would compile)."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tvm_graphs import conv_graph, mlp_graph, reference

cl = pytest.importorskip("pyopencl")

GRAPHS = {
    "int4-int8": lambda: mlp_graph(("int4", "int8")),
    "nf4-ternary": lambda: mlp_graph(("nf4", "ternary"), act=("static", "dynamic"), seed=1),
    "conv-int4": lambda: conv_graph("int4"),
}


@pytest.fixture(scope="module")
def pocl_device():
    for p in cl.get_platforms():
        if "Portable Computing Language" in p.name or "pocl" in p.name.lower():
            return p.get_devices()[0]
    import os

    msg = "no PoCL OpenCL platform: apt-get install pocl-opencl-icd (or run `make system-deps`)"
    if os.environ.get("LOWBIT_REQUIRE_ALL") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.mark.parametrize("profile", ["android-adreno", "android-mali"])
@pytest.mark.parametrize("key", sorted(GRAPHS))
def test_opencl_kernels_match_on_pocl(tvm_artifact, pocl_device, profile, key):
    from lowbit.exporters.tvm_opencl import OpenCLPlan

    graph, path = tvm_artifact(key, GRAPHS[key], profile)
    m = json.loads((path / "manifest.json").read_text())
    assert m["device"] == "gpu" and m["tvm_target"]["kind"] == "opencl"
    assert m["tvm_target"]["device"] == profile.split("-")[1]
    src = (path / "kernels.cl").read_text()
    assert "__kernel" in src and "get_local_id" in src
    # The int4 decode is in the OpenCL matmul kernel: shifts and masks on the packed bytes.
    qk = [k for k in m["quant_kernels"] if "matmul" in k or "conv" in k]
    assert qk
    plan_calls = json.loads((path / "plan.json").read_text())["calls"]
    func = next(c["func"] for c in plan_calls if qk[0] in c["func"])
    bodies = re.findall(rf"__kernel void {func}_kernel\w*\(([^)]*)\) {{\n(.*?)\n}}\n", src, re.S)
    assert any("uchar" in params and ">>" in body and "& (uchar)" in body for params, body in bodies), \
        f"no kernel of {func} decodes packed bytes"
    plan = OpenCLPlan(path, device=pocl_device)
    tol = m["tolerance"]["max_abs_err_rel_to_max"]
    x = np.random.default_rng(5).standard_normal(graph.inputs[0].shape).astype(np.float32)
    out = plan.run({"x": x})
    ref = reference(graph, {"x": x})
    for name in ref:
        err = float(np.max(np.abs(out[name] - ref[name])) / max(np.max(np.abs(ref[name])), 1e-12))
        assert err <= tol, f"{profile} {key} {name}: max rel err {err:.3g}"
    # The host side was cross-built for the phone's CPU.
    assert (path / "model.so").read_bytes()[18] == 183  # e_machine EM_AARCH64 (little-endian low byte)
