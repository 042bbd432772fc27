"""The TVM artifact travels inside a .lbpk as an alternate backend: embedded as a checksummed
section, every original section kept bit for bit, and extracted next to the package where
`lowbit profile --compare tvm` finds it."""
from __future__ import annotations

import numpy as np
import pytest

from lowbit import LowbitError
from tvm_graphs import mlp_graph, reference

container = pytest.importorskip("lowbit.exporters.lbpk_container")


def _package(path):
    with container.PackageWriter(path) as w:
        w.add_tensor("weights.a", np.arange(12, dtype=np.float32).reshape(3, 4), layout="nk")
        w.add_tensor("weights.b", np.arange(5, dtype=np.int8))
        w.add_blob("tokenizer", b"vocab bytes")
        w.manifest.update({"kind": "graph", "model": "mlp", "scheme": "w4a8-g32"})
    return path


def test_embed_and_extract_tvm(tmp_path, tvm_artifact):
    from lowbit.exporters.tvm import load_tvm
    from lowbit.exporters.tvm_lbpk import embed_tvm, extract_tvm

    graph, art = tvm_artifact("int4-int8", lambda: mlp_graph(("int4", "int8")), "x86-64-avx2")
    pkg = _package(tmp_path / "model.lbpk")
    with pytest.raises(LowbitError, match="no TVM artifact"):
        extract_tvm(pkg)
    embed_tvm(pkg, art)
    r = container.PackageReader(pkg, verify=True)  # every section's SHA-256, the new one included
    try:
        assert np.array_equal(r.tensor("weights.a"), np.arange(12, dtype=np.float32).reshape(3, 4))
        assert r.manifest["tensors"]["weights.a"]["layout"] == "nk"
        assert bytes(r.section_bytes("tokenizer")) == b"vocab bytes"
        assert r.manifest["scheme"] == "w4a8-g32"
        arts = r.manifest["artifacts"]
        assert arts["tvm"] == "model.tvm" and arts["tvm_profile"] == "x86-64-avx2"
    finally:
        r.close()
    embed_tvm(pkg, art)  # embedding again replaces the section rather than adding a second one
    folder = extract_tvm(pkg)
    assert folder == tmp_path / "model.tvm"
    x = np.random.default_rng(3).standard_normal(graph.inputs[0].shape).astype(np.float32)
    out = load_tvm(folder).run({"x": x})["y"]
    np.testing.assert_allclose(out, reference(graph, {"x": x})["y"], rtol=0, atol=1e-4)
    # A corrupted TVM section is caught by the package checksum.
    raw = bytearray(pkg.read_bytes())
    r = container.PackageReader(pkg, verify=False)
    off = r.sections["tvm"].offset + 1000
    r.close()
    raw[off] ^= 0xFF
    pkg.write_bytes(bytes(raw))
    with pytest.raises(container.PackageError, match="tvm"):
        extract_tvm(pkg)
