"""Per-layer values for the numeric gap, without reaching into the runtime: a copy of the package
whose manifest lists every op output as a graph output, so the runtime keeps them all and
returns them from an ordinary run. Float references per layer come from the same trick on a float
package of the model, or from ONNX Runtime with every node output exposed."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Dict, Optional

import numpy as np

_TENSOR_KEYS = {"dtype", "shape", "section", "offset", "nbytes"}


def all_values_package(src, dst) -> Path:
    """Writes `dst`: `src` with every declared op output added to the graph outputs."""
    from lowbit.exporters.lbpk_container import KIND_BLOB, PackageReader, PackageWriter

    r = PackageReader(src, verify=True)
    try:
        man = dict(r.manifest)
        declared = man.get("values") or {}
        outs = list(man.get("outputs") or [])
        have = {o["name"] for o in outs}
        consts = set(man.get("tensors") or {})
        for op in man.get("ops") or []:
            for v in op.get("outputs") or []:
                if v and v not in have and v not in consts and v in declared:
                    outs.append({"name": v, "dtype": declared[v].get("dtype", "f32"), "shape": declared[v].get("shape", [])})
                    have.add(v)
        man["outputs"] = outs
        with PackageWriter(dst) as w:
            for name, entry in (r.manifest.get("tensors") or {}).items():
                w.add_tensor(name, np.array(r.tensor(name)), **{k: v for k, v in entry.items() if k not in _TENSOR_KEYS})
            for name, sec in r.sections.items():
                if sec.kind == KIND_BLOB:
                    w.add_blob(name, bytes(r.section_bytes(name)))
            w.manifest.update({k: v for k, v in man.items() if k not in ("tensors", "format")})
    finally:
        r.close()
    return Path(dst)


def package_values(path, feed: dict, threads: Optional[int] = None) -> Dict[str, np.ndarray]:
    """Every op output of one run of a package on `feed` (through lowbit.load)."""
    import lowbit

    with tempfile.TemporaryDirectory(prefix="lowbit-values-") as d:
        variant = all_values_package(path, Path(d) / "values.lbpk")
        try:
            sess = lowbit.load(variant, threads=threads) if threads else lowbit.load(variant)
        except TypeError:
            sess = lowbit.load(variant)
        out = sess.run(feed)
        return {k: np.array(v) for k, v in out.items()}


def onnx_values(onnx_path, feed: dict) -> Dict[str, np.ndarray]:
    """Every node output of an ONNX model run by ONNX Runtime (float reference per layer)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(onnx_path))
    existing = {o.name for o in model.graph.output}
    for node in model.graph.node:
        for name in node.output:
            if name and name not in existing:
                model.graph.output.append(onnx.ValueInfoProto(name=name))
                existing.add(name)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    f = {n: feed[n] for n in names if n in feed} if all(n in feed for n in names) else dict(zip(names, feed.values()))
    outs = sess.run(None, f)
    return {o.name: np.asarray(v) for o, v in zip(sess.get_outputs(), outs)}


def reference_values(reference, feed: dict, threads: Optional[int] = None) -> Dict[str, np.ndarray]:
    """Float values per layer from a dict, a callable(feed), a float .lbpk or an .onnx file."""
    if reference is None:
        return {}
    if isinstance(reference, dict):
        return dict(reference)
    if callable(reference):
        return dict(reference(feed))
    p = Path(reference)
    if p.suffix == ".onnx":
        return onnx_values(p, feed)
    return package_values(p, feed, threads)
