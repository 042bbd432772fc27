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


_PKG_DTYPES = {"float32": "f32", "float16": "f16", "int8": "i8", "uint8": "u8", "int32": "i32", "int64": "i64",
               "bool": "bool", "int16": "i16"}


def declarations(arrays: Dict[str, np.ndarray]) -> Dict[str, dict]:
    """Manifest value declarations ({dtype, shape}) of float reference arrays."""
    return {k: {"dtype": _PKG_DTYPES[np.asarray(v).dtype.name], "shape": list(np.shape(v))}
            for k, v in arrays.items() if np.asarray(v).dtype.name in ("float32", "float16")}


def all_values_package(src, dst, decls: Optional[Dict[str, dict]] = None) -> Path:
    """Writes `dst`: `src` with every op output whose dtype and shape are known (declared in the
    manifest's "values", or given in `decls`) added to the graph outputs."""
    from lowbit.exporters.lbpk_container import KIND_BLOB, PackageReader, PackageWriter

    r = PackageReader(src, verify=True)
    try:
        man = dict(r.manifest)
        declared = dict(decls or {})
        declared.update(man.get("values") or {})
        outs = list(man.get("outputs") or [])
        have = {o["name"] for o in outs}
        consts = set(man.get("tensors") or {})
        for op in man.get("ops") or []:
            for v in op.get("outputs") or []:
                if v and v not in have and v not in consts and v in declared:
                    outs.append({"name": v, "dtype": declared[v].get("dtype", "f32"), "shape": declared[v].get("shape", [])})
                    have.add(v)
        man["outputs"] = outs
        # A graph output is plain NCHW: drop the blocked-layout marks of fp32 conv chains (values an op
        # keeps 8 channels per block for its reader); the unchained ops compute the same bits.
        blocked = ("x_nchw8c", "y_nchw8c")
        man["ops"] = [dict(op, attrs={k: v for k, v in op["attrs"].items() if k not in blocked})
                      if any(k in (op.get("attrs") or {}) for k in blocked) else op for op in man.get("ops") or []]
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


def package_values(path, feed: dict, threads: Optional[int] = None,
                   decls: Optional[Dict[str, dict]] = None) -> Dict[str, np.ndarray]:
    """Every op output (with a known declaration) of one run of a package on `feed`."""
    import lowbit

    with tempfile.TemporaryDirectory(prefix="lowbit-values-") as d:
        variant = all_values_package(path, Path(d) / "values.lbpk", decls)
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


# ONNX ops that lowbit's lowering fuses into the op before them (manifest attrs "act").
_FUSABLE_ACTS = {"Relu", "Clip", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "LeakyRelu", "Gelu"}


def onnx_fused_successors(onnx_path) -> Dict[str, str]:
    """{value: output of the activation that consumes it alone}: the ONNX value that an op with a
    fused activation (manifest attrs "act") writes under its own output name."""
    import onnx

    g = onnx.load(str(onnx_path), load_external_data=False).graph
    consumers: Dict[str, list] = {}
    for node in g.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    out = {}
    for v, nodes in consumers.items():
        if len(nodes) == 1 and nodes[0].op_type in _FUSABLE_ACTS and nodes[0].output:
            out[v] = nodes[0].output[0]
    return out


def reference_values(reference, feed: dict, threads: Optional[int] = None,
                     manifest: Optional[dict] = None) -> Dict[str, np.ndarray]:
    """Float values per layer from a dict, a callable(feed), a float .lbpk or an .onnx file. For
    ONNX, an op of `manifest` with a fused activation is given the activation's output."""
    if reference is None:
        return {}
    if isinstance(reference, dict):
        return dict(reference)
    if callable(reference):
        return dict(reference(feed))
    p = Path(reference)
    if p.suffix == ".onnx":
        vals = onnx_values(p, feed)
        if manifest:
            succ = onnx_fused_successors(p)
            for op in manifest.get("ops") or []:
                if (op.get("attrs") or {}).get("act"):
                    for v in op.get("outputs") or []:
                        if v in succ and succ[v] in vals:
                            vals[v] = vals[succ[v]]
        return vals
    return package_values(p, feed, threads)
