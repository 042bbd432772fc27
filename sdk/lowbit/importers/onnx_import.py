"""ONNX -> lowbit graph IR.

Fixes the input shapes (dynamic dimensions must be given, except a leading batch dimension, which
becomes 1), runs onnx shape inference, folds constant and shape subgraphs with the reference
executor, folds BatchNormalization into the Conv before it, rewrites Gemm as MatMul + Add and
drops Identity/Dropout, so the quantization passes see plain Conv/MatMul nodes with constant weights.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from lowbit import LowbitError
from lowbit.ir import Graph, Node, QuantWeight, TensorInfo

MIN_OPSET = 13  # per-channel DequantizeLinear (axis) needs 13; older models are converted to 17
NO_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial"}


def _onnx():
    try:
        import onnx  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover
        raise LowbitError("importing ONNX models needs the onnx package: pip install 'lowbit[export]'") from exc
    return onnx


def _np_dtype_name(elem_type: int) -> str:
    onnx = _onnx()
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).name
    except Exception:
        return "unknown"


def _attr_value(a):
    onnx = _onnx()
    v = onnx.helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, onnx.TensorProto):
        return onnx.numpy_helper.to_array(v)
    if isinstance(v, list) and v and isinstance(v[0], bytes):
        return [x.decode() for x in v]
    if isinstance(v, onnx.GraphProto):
        raise LowbitError("control-flow subgraphs (If/Loop/Scan) are not supported")
    return v


def load_model(path_or_model) -> "onnx.ModelProto":  # noqa: F821
    """Load and check an ONNX file with a clear error if it is not a loadable model."""
    onnx = _onnx()
    if isinstance(path_or_model, onnx.ModelProto):
        return path_or_model
    p = Path(path_or_model)
    if not p.is_file():
        raise LowbitError(f"model file {str(p)!r} does not exist")
    try:
        model = onnx.load(str(p))
    except Exception as exc:
        raise LowbitError(f"{p} is not a loadable ONNX model ({type(exc).__name__}: {exc})") from exc
    if not model.graph.node:
        raise LowbitError(f"{p} is not a loadable ONNX model (it has no graph nodes)")
    return model


def _opset(model) -> int:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return int(o.version)
    return 0


def _fix_inputs(model, input_shapes: Optional[Dict[str, Sequence[int]]]) -> None:
    """Write fixed sizes into the model's input dims (in place)."""
    init_names = {i.name for i in model.graph.initializer}
    input_shapes = dict(input_shapes or {})
    for inp in model.graph.input:
        if inp.name in init_names:
            continue
        dims = inp.type.tensor_type.shape.dim
        given = input_shapes.pop(inp.name, None)
        if given is not None:
            if len(given) != len(dims):
                raise LowbitError(f"input {inp.name!r} has rank {len(dims)} but the shape given is {tuple(given)}")
            for d, v in zip(dims, given):
                if d.HasField("dim_value") and d.dim_value not in (0, int(v)):
                    raise LowbitError(f"input {inp.name!r} has fixed size {[x.dim_value or x.dim_param for x in dims]}"
                                      f" but the data has shape {tuple(given)}")
                d.Clear()
                d.dim_value = int(v)
            continue
        for i, d in enumerate(dims):
            if not d.HasField("dim_value") or d.dim_value <= 0:
                if i == 0:
                    d.Clear()
                    d.dim_value = 1
                else:
                    shape = [x.dim_value if x.HasField("dim_value") else (x.dim_param or "?") for x in dims]
                    raise LowbitError(
                        f"input {inp.name!r} has dynamic shape {shape}: give fixed shapes "
                        f"(calibration data or example inputs fix them, or input_shapes={{...}})")
    if input_shapes:
        raise LowbitError(f"shapes given for unknown inputs {sorted(input_shapes)}; "
                          f"the model's inputs are {[i.name for i in model.graph.input]}")


def onnx_to_graph(model) -> Graph:
    """Map a ModelProto onto the IR, one node per ONNX node (no rewriting)."""
    onnx = _onnx()
    g = model.graph
    inits: Dict[str, np.ndarray] = {}
    for t in g.initializer:
        inits[t.name] = onnx.numpy_helper.to_array(t)
    nodes: List[Node] = []
    used = set()
    for i, n in enumerate(g.node):
        name = n.name or f"{n.op_type}_{i}"
        while name in used:
            name = f"{name}_{i}"
        used.add(name)
        attrs = {a.name: _attr_value(a) for a in n.attribute}
        nodes.append(Node(n.op_type, name, list(n.input), list(n.output), attrs,
                          "" if n.domain == "ai.onnx" else n.domain))

    def info(vi) -> TensorInfo:
        tt = vi.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim) \
            if tt.HasField("shape") else ()
        return TensorInfo(vi.name, _np_dtype_name(tt.elem_type), shape)

    inputs = [info(i) for i in g.input if i.name not in inits]
    outputs = [info(o) for o in g.output]
    value_info = {vi.name: info(vi) for vi in g.value_info}
    opsets = {o.domain or "": int(o.version) for o in model.opset_import}
    return Graph(g.name or "model", nodes, inputs, outputs, inits, value_info,
                 {"opset": opsets.get("", 17), "opsets": opsets, "producer": model.producer_name})


def _infer(graph: Graph) -> Graph:
    """Re-run onnx shape inference on the IR (round trip through ModelProto)."""
    onnx = _onnx()
    from lowbit.exporters.onnx_writer import graph_to_model  # noqa: PLC0415

    model = graph_to_model(graph, keep_value_info=False)
    # Shape inference needs only the shapes of big weights: pass them as typed inputs, not data.
    big = [t for t in model.graph.initializer if np.prod(t.dims) > 4096]
    for t in big:
        model.graph.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    keep = [t for t in model.graph.initializer if np.prod(t.dims) <= 4096]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    try:
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:
        raise LowbitError(f"onnx shape inference failed: {exc}") from exc
    new = onnx_to_graph(model)
    graph.value_info = new.value_info
    for t in new.inputs:
        if t.name in graph.initializers:
            graph.value_info.setdefault(t.name, t)
    graph.outputs = [new.outputs[i] if i < len(new.outputs) else t for i, t in enumerate(graph.outputs)]
    return graph


def _static_shape(graph: Graph, name: str) -> Optional[Tuple[int, ...]]:
    if name in graph.initializers:
        v = graph.initializers[name]
        return tuple(v.shape) if isinstance(v, np.ndarray) else None
    for t in graph.inputs:
        if t.name == name:
            return tuple(t.shape) if all(isinstance(d, int) for d in t.shape) else None
    vi = graph.value_info.get(name)
    if vi is not None and vi.shape is not None and all(isinstance(d, int) and d >= 0 for d in vi.shape):
        if vi.shape == () and vi.dtype == "unknown":
            return None
        return tuple(vi.shape)
    return None


def fold_constants(graph: Graph) -> int:
    """Evaluate every node whose inputs are all constant (and Shape of a statically shaped value)."""
    from lowbit import refexec  # noqa: PLC0415

    env: Dict[str, object] = {k: v for k, v in graph.initializers.items() if isinstance(v, np.ndarray)}
    env[""] = None
    kept: List[Node] = []
    folded = 0
    for n in graph.nodes:
        if n.op == "Shape" and n.domain == "":
            shp = _static_shape(graph, n.inputs[0])
            if shp is not None:
                env[n.outputs[0]] = refexec._shape(n, np.empty(shp, np.uint8))
                folded += 1
                continue
        if (n.domain == "" and n.op not in NO_FOLD and n.op in refexec._OPS
                and all(i in env for i in n.inputs) and n.outputs):
            try:
                refexec.run_node(n, env)
                folded += 1
                continue
            except LowbitError:
                pass
        kept.append(n)
    needed = {i for n in kept for i in n.inputs} | {t.name for t in graph.outputs}
    for name, v in env.items():
        if name and name in needed and name not in graph.initializers:
            graph.initializers[name] = np.asarray(v)
    graph.nodes = kept
    return folded


def _rename_value(graph: Graph, old: str, new: str) -> None:
    for n in graph.nodes:
        n.inputs = [new if i == old else i for i in n.inputs]


def simplify(graph: Graph) -> None:
    """Identity/Dropout removal, Conv+BatchNormalization folding, Gemm -> MatMul + Add, dead code removal."""
    out_names = {t.name for t in graph.outputs}
    # Identity / Dropout
    for n in list(graph.nodes):
        if n.op in ("Identity", "Dropout") and n.domain == "" and n.outputs[0] not in out_names:
            graph.nodes.remove(n)
            _rename_value(graph, n.outputs[0], n.inputs[0])
    # Conv -> BatchNormalization
    for bn in [n for n in graph.nodes if n.op == "BatchNormalization"]:
        conv = graph.producer(bn.inputs[0])
        if (conv is None or conv.op != "Conv" or len(graph.consumers(conv.outputs[0])) != 1
                or conv.outputs[0] in out_names or len(bn.outputs) > 1 and any(bn.outputs[1:])
                or not all(isinstance(graph.initializers.get(i), np.ndarray) for i in bn.inputs[1:5])
                or not isinstance(graph.initializers.get(conv.inputs[1]), np.ndarray)
                or len(graph.consumers(conv.inputs[1])) != 1):
            continue
        scale, beta, mean, var = (graph.initializers[i].astype(np.float64) for i in bn.inputs[1:5])
        inv = scale / np.sqrt(var + bn.attrs.get("epsilon", 1e-5))
        w = graph.initializers[conv.inputs[1]].astype(np.float64)
        b = graph.initializers[conv.inputs[2]].astype(np.float64) if len(conv.inputs) > 2 and conv.inputs[2] else 0.0
        graph.initializers[conv.inputs[1]] = (w * inv.reshape(-1, *[1] * (w.ndim - 1))).astype(np.float32)
        bias_name = conv.name + ".bias_bn"
        graph.initializers[bias_name] = ((b - mean) * inv + beta).astype(np.float32)
        conv.inputs = [conv.inputs[0], conv.inputs[1], bias_name]
        conv.outputs = [bn.outputs[0]]
        graph.nodes.remove(bn)
    # Gemm -> MatMul (+ Add)
    for gm in [n for n in graph.nodes if n.op == "Gemm"]:
        b = graph.initializers.get(gm.inputs[1])
        if gm.attrs.get("transA", 0) or not isinstance(b, np.ndarray) or len(graph.consumers(gm.inputs[1])) != 1:
            continue
        b = b.T if gm.attrs.get("transB", 0) else b
        b = (b * np.float32(gm.attrs.get("alpha", 1.0))).astype(np.float32)
        graph.initializers[gm.inputs[1]] = np.ascontiguousarray(b)
        idx = graph.nodes.index(gm)
        has_c = len(gm.inputs) > 2 and gm.inputs[2]
        mm_out = gm.outputs[0] + "_mm" if has_c else gm.outputs[0]
        mm = Node("MatMul", gm.name, gm.inputs[:2], [mm_out])
        new = [mm]
        if has_c:
            c = graph.initializers.get(gm.inputs[2])
            cname = gm.inputs[2]
            if isinstance(c, np.ndarray) and gm.attrs.get("beta", 1.0) != 1.0:
                graph.initializers[cname] = (c * np.float32(gm.attrs["beta"])).astype(np.float32)
            new.append(Node("Add", gm.name + "_bias", [mm_out, cname], gm.outputs))
        graph.nodes[idx:idx + 1] = new
    eliminate_dead(graph)


def eliminate_dead(graph: Graph) -> None:
    needed = {t.name for t in graph.outputs}
    kept = []
    for n in reversed(graph.nodes):
        if any(o in needed for o in n.outputs if o):
            kept.append(n)
            needed.update(i for i in n.inputs if i)
    graph.nodes = kept[::-1]
    for name in list(graph.initializers):
        if name not in needed:
            del graph.initializers[name]


def import_onnx(path_or_model, input_shapes: Optional[Dict[str, Sequence[int]]] = None) -> Graph:
    """An ONNX file (or ModelProto) -> an IR graph with fixed shapes, folded constants, BN folded."""
    onnx = _onnx()
    model = load_model(path_or_model)
    model_copy = onnx.ModelProto()
    model_copy.CopyFrom(model)
    model = model_copy
    if 0 < _opset(model) < MIN_OPSET:
        try:
            model = onnx.version_converter.convert_version(model, 17)
        except Exception as exc:
            raise LowbitError(f"cannot convert the model from opset {_opset(model)} to 17: {exc}") from exc
    _fix_inputs(model, input_shapes)
    graph = onnx_to_graph(model)
    if isinstance(path_or_model, (str, Path)):
        graph.metadata["source"] = str(path_or_model)
        graph.name = Path(path_or_model).stem if graph.name in ("", "model", "main_graph", "torch_jit") else graph.name
    for _ in range(6):
        _infer(graph)
        changed = fold_constants(graph)
        simplify(graph)
        if not changed:
            break
    _infer(graph)
    graph.check()
    return graph


def import_torch(module, example_inputs, input_names: Optional[List[str]] = None,
                 output_names: Optional[List[str]] = None, opset: int = 17) -> Graph:
    """A ``torch.nn.Module`` + example inputs -> ONNX (PyTorch's exporter) -> IR graph."""
    import io
    import warnings

    import torch  # noqa: PLC0415

    if isinstance(example_inputs, dict):
        input_names = input_names or list(example_inputs)
        args = tuple(torch.as_tensor(np.asarray(v)) for v in example_inputs.values())
    else:
        if not isinstance(example_inputs, (tuple, list)):
            example_inputs = (example_inputs,)
        args = tuple(x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x)) for x in example_inputs)
    input_names = input_names or [f"input{i}" if len(args) > 1 else "input" for i in range(len(args))]
    module = module.eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with torch.no_grad():
                torch.onnx.export(module, args, buf, dynamo=False, input_names=input_names,
                                  output_names=output_names, opset_version=opset)
        except Exception as exc:
            raise LowbitError(f"PyTorch could not export the module to ONNX: {type(exc).__name__}: {exc}") from exc
    onnx = _onnx()
    model = onnx.load_from_string(buf.getvalue())
    shapes = {n: tuple(a.shape) for n, a in zip(input_names, args)}
    graph = import_onnx(model, shapes)
    graph.name = type(module).__name__
    graph.metadata["source"] = f"torch:{type(module).__name__}"
    return graph
