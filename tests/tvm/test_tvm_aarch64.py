"""TVM for the ARM profiles: the Relax library cross-compiled with Debian's aarch64 compiler, and
the same kernels linked into a static runner that executes under qemu-aarch64 and matches the
reference. Plus the AVX-512 VNNI profile: its code is checked for 512-bit instructions, run and compared with the
reference where the CPU has AVX-512 VNNI, and refused with a clear error where it has not."""
from __future__ import annotations

import json
import struct
import subprocess

import numpy as np
import pytest

from lowbit_testutil import need_tool
from tvm_graphs import conv_graph, mlp_graph, reference

from lowbit.exporters import tvm as tvm_writer


def _elf_header(path):
    raw = path.read_bytes()[:20]
    assert raw[:4] == b"\x7fELF", f"{path} is not an ELF file"
    e_type, e_machine = struct.unpack("<HH", raw[16:20])
    return e_type, e_machine


@pytest.mark.parametrize("profile", ["arm64-cortex-a55", "arm64-cortex-a76", "arm64-neoverse-v1"])
def test_relax_library_cross_compiles_for_arm(tvm_artifact, profile):
    need_tool("aarch64-linux-gnu-g++", "g++-aarch64-linux-gnu")
    graph, path = tvm_artifact("int4-int8", lambda: mlp_graph(("int4", "int8")), profile)
    e_type, e_machine = _elf_header(path / "model.so")
    assert (e_type, e_machine) == (3, 183), "expected an AArch64 shared object (ET_DYN, EM_AARCH64)"
    m = tvm_writer.read_manifest(path)
    assert m["arch"] == "aarch64" and m["tvm_target"]["mtriple"].startswith("aarch64")
    with pytest.raises(Exception, match="cannot run on this"):
        tvm_writer.load_tvm(path)


@pytest.mark.qemu
@pytest.mark.parametrize("profile", ["arm64-cortex-a55", "arm64-neoverse-v1"])
@pytest.mark.parametrize("key", ["mlp", "conv"])
def test_arm_kernels_run_under_qemu_and_match(tmp_path, profile, key):
    need_tool("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu")
    need_tool("qemu-aarch64", "qemu-user")
    from lowbit.exporters import tvm_cross

    graph = mlp_graph(("int4", "nf4")) if key == "mlp" else conv_graph("int4")
    folder = tvm_cross.build_runner(graph, profile, tmp_path / "runner")
    assert _elf_header(folder / "runner")[1] == 183
    x = np.random.default_rng(11).standard_normal(graph.inputs[0].shape).astype(np.float32)
    out = tvm_cross.run(folder, {"x": x})
    assert json.loads((folder / "runner.json").read_text())["emulator"][:3] == ["qemu-aarch64", "-cpu", "max"]
    ref = reference(graph, {"x": x})
    for name in ref:
        err = float(np.max(np.abs(out[name] - ref[name])) / np.max(np.abs(ref[name])))
        assert err <= tvm_writer.TOLERANCE["max_abs_err_rel_to_max"], f"{profile} {key}: {err:.3g}"


def test_avx512vnni_profile_compiles_with_zmm_code(tvm_artifact):
    """The artifact holds 512-bit code (and the AVX2 one none); run_or_refuse below executes it."""
    need_tool("objdump", "binutils")
    graph, path = tvm_artifact("int4-int8", lambda: mlp_graph(("int4", "int8"), k=256, hidden=64), "x86-64-avx512vnni")
    asm = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(path / "model.so")],
                         capture_output=True, text=True, check=True).stdout
    assert "zmm" in asm, "no 512-bit instructions in the avx512vnni build"
    _, path2 = tvm_artifact("int4-int8", lambda: mlp_graph(("int4", "int8")), "x86-64-avx2")
    asm2 = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(path2 / "model.so")],
                          capture_output=True, text=True, check=True).stdout
    assert "zmm" not in asm2 and "ymm" in asm2, "the avx2 build must use 256-bit and never 512-bit registers"


@pytest.mark.qemu
def test_arm_runner_handles_bool_and_float_ops(tmp_path):
    need_tool("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu")
    need_tool("qemu-aarch64", "qemu-user")
    from lowbit.exporters import tvm_cross
    from lowbit.ir import Graph, Node, TensorInfo

    g = Graph("mask", [Node("Greater", "gt", ["x", "zero"], ["m"]), Node("Where", "wh", ["m", "x", "neg"], ["w"]),
                       Node("Softmax", "sm", ["w"], ["y"], {"axis": -1})],
              [TensorInfo("x", "float32", (4, 8))], [TensorInfo("y", "float32", (4, 8))],
              {"zero": np.zeros((), np.float32), "neg": np.full((), -1.0, np.float32)})
    folder = tvm_cross.build_runner(g, "arm64-cortex-a76", tmp_path / "mask")
    x = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    w = np.where(x > 0, x, np.float32(-1.0))
    e = np.exp(w - w.max(-1, keepdims=True))
    np.testing.assert_allclose(tvm_cross.run(folder, {"x": x})["y"], e / e.sum(-1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_avx512vnni_artifact_runs_where_the_cpu_can_and_is_refused_elsewhere(tvm_artifact, monkeypatch):
    graph, path = tvm_artifact("int4-int8", lambda: mlp_graph(("int4", "int8"), k=256, hidden=64), "x86-64-avx512vnni")
    assert tvm_writer.read_manifest(path)["isa"] == "avx512vnni"
    x = np.random.default_rng(5).standard_normal(graph.inputs[0].shape).astype(np.float32)
    if "avx512vnni" in tvm_writer._usable_isas():  # e.g. the Zen 4 VM since session 10
        out = tvm_writer.load_tvm(path).run({"x": x})
        ref = reference(graph, {"x": x})
        for name in ref:
            err = float(np.max(np.abs(out[name] - ref[name])) / np.max(np.abs(ref[name])))
            assert err <= tvm_writer.TOLERANCE["max_abs_err_rel_to_max"], f"avx512vnni artifact: {err:.3g}"
    # A CPU without those instructions gets an error naming them, not SIGILL inside TVM.
    monkeypatch.setattr(tvm_writer, "_usable_isas", lambda: ["scalar", "avx2"])
    with pytest.raises(Exception, match="needs the avx512vnni instructions; this CPU runs only scalar, avx2"):
        tvm_writer.load_tvm(path)
