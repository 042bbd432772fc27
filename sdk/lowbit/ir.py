"""lowbit's graph IR: the one representation every importer produces, every quantization pass
rewrites and every writer (.lbpk, ONNX, TVM) reads.

It is deliberately ONNX-shaped (ops by ONNX name and attributes, tensors by name) so importing an
ONNX model is a direct mapping, and it carries quantization results as typed objects rather than
as extra graph nodes, so that all writers read *the same* quantized tensors:

* a quantized weight is a :class:`QuantWeight` stored in ``Graph.initializers`` in place of the
  float array (the float original stays in ``QuantWeight.float_ref`` only until export ends);
* a quantized activation is described by ``Node.attrs["act_quant"]``, an :class:`ActQuant`;
* ops lowbit adds have ``domain == "lowbit"``.

Numpy only: no torch/onnx import here.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

Dim = Union[int, str, None]  # a fixed size, a named dynamic dimension ("batch"), or unknown


@dataclass
class TensorInfo:
    """A graph input/output (or any value whose type is known)."""

    name: str
    dtype: str  # numpy dtype name: "float32", "int64", "int8", "uint8", "float16", "int32", "bool"
    shape: Tuple[Dim, ...]


@dataclass
class ActQuant:
    """How the activation entering an op is quantized (``Node.attrs["act_quant"]``)."""

    mode: str  # "static" (calibrated scale/zero point) or "dynamic" (computed per row/block at run time)
    bits: int = 8
    scale: Optional[float] = None  # static: real = scale * (q - zero_point)
    zero_point: int = 0  # static, asymmetric uint8-style ranges are stored shifted to int8
    granularity: str = "tensor"  # static: "tensor"; dynamic: "row" or "block"
    block: int = 0  # dynamic "block": elements per block along K
    # Optional per-input-channel smoothing divisor (``--smooth``, OutlierTune/SmoothQuant): the
    # activation is divided by ``smooth[k]`` in the same step that quantizes it (channel = last axis
    # for MatMul, axis 1 for Conv) and the weight row k was multiplied by it at export, so the
    # product is unchanged and the per-channel scales cost nothing at run time. None = no smoothing.
    smooth: Optional[np.ndarray] = None


@dataclass
class QuantWeight:
    """A quantized weight matrix, logically ``[N, K]`` (output channels x reduction).

    ``q`` holds one integer code per element (unpacked, int8, row-major ``[N, K]``): for integer
    formats the signed value (int4 in [-8, 7] or [0, 15] when asymmetric, int8 in [-127, 127],
    ternary in {-1, 0, 1}); for codebook formats the index 0..15 into ``codebook``.
    Dequantized value: ``scale[n, g] * (code_value - zero[n, g])`` or, with a ``minimum``,
    ``scale[n, g] * code_value + minimum[n, g]`` where g = k // group_size.
    Packing into a kernel's layout happens in the writer, never here.
    """

    fmt: str  # "int8", "int4", "int4_asym", "nf4", "fp4", "cb4", "ternary"
    q: np.ndarray  # int8 [N, K]
    scale: np.ndarray  # float32 [N, K // group_size] (group_size == K for per-channel)
    group_size: int
    zero: Optional[np.ndarray] = None  # float32/int8 [N, G]: integer zero point (asymmetric int)
    minimum: Optional[np.ndarray] = None  # float32 [N, G]: scale+min form (asymmetric int4)
    codebook: Optional[np.ndarray] = None  # float32 [16] for nf4/fp4/cb4
    outliers: Optional[Tuple[np.ndarray, np.ndarray]] = None  # (flat int64 indices into [N, K], float16 values)
    orig_shape: Tuple[int, ...] = ()  # shape of the float tensor this replaced (e.g. conv [O, I, kh, kw])
    layout: str = "nk"  # "nk": q is [N, K] as used by MatMul with the weight transposed; "kn" in the source graph
    algo: str = "rtn"  # "rtn", "gptq", "kmeans", "absmean"
    float_ref: Optional[np.ndarray] = None  # the float original, for accuracy reports (not written out)

    @property
    def shape(self) -> Tuple[int, int]:
        return tuple(self.q.shape)  # type: ignore[return-value]

    def dequantize(self) -> np.ndarray:
        """Float32 ``[N, K]`` that the quantized kernels compute with (outliers applied)."""
        n, k = self.q.shape
        g = self.group_size
        if self.codebook is not None:
            vals = self.codebook.astype(np.float32)[self.q.astype(np.int64)]
        else:
            vals = self.q.astype(np.float32)
        vals = vals.reshape(n, k // g, g)
        scale = self.scale.astype(np.float32)[:, :, None]
        if self.minimum is not None:
            out = vals * scale + self.minimum.astype(np.float32)[:, :, None]
        elif self.zero is not None:
            out = (vals - self.zero.astype(np.float32)[:, :, None]) * scale
        else:
            out = vals * scale
        out = out.reshape(n, k)
        if self.outliers is not None:
            idx, val = self.outliers
            out.reshape(-1)[idx] = val.astype(np.float32)
        return out


@dataclass
class Node:
    """One op. ``op`` is an ONNX op type (``Conv``, ``MatMul``, ...) unless ``domain`` says otherwise."""

    op: str
    name: str
    inputs: List[str]  # "" for an omitted optional input
    outputs: List[str]
    attrs: Dict[str, Any] = field(default_factory=dict)
    domain: str = ""  # "" = ONNX, "com.microsoft", or "lowbit"


@dataclass
class Graph:
    """A model: nodes in topological order, initializers (float arrays or QuantWeight), I/O."""

    name: str
    nodes: List[Node]
    inputs: List[TensorInfo]
    outputs: List[TensorInfo]
    initializers: Dict[str, Union[np.ndarray, QuantWeight]] = field(default_factory=dict)
    value_info: Dict[str, TensorInfo] = field(default_factory=dict)  # inferred types of intermediate values
    metadata: Dict[str, Any] = field(default_factory=dict)  # scheme, source, opset, accuracy report, ...

    def clone(self) -> "Graph":
        """A copy a pass may edit: its own node objects (with their own attrs dicts), initializer and
        metadata dicts; tensors, TensorInfos and node input/output lists are shared."""
        c = copy.copy(self)
        c.nodes = [copy.copy(n) for n in self.nodes]
        for n in c.nodes:
            n.attrs = dict(n.attrs)
        c.initializers = dict(self.initializers)
        c.metadata = dict(self.metadata)
        return c

    def producer(self, value: str) -> Optional[Node]:
        for n in self.nodes:
            if value in n.outputs:
                return n
        return None

    def consumers(self, value: str) -> List[Node]:
        return [n for n in self.nodes if value in n.inputs]

    def op_types(self) -> List[str]:
        return sorted({(n.domain + "::" if n.domain else "") + n.op for n in self.nodes})

    def check(self) -> None:
        """Structural check: every input of every node is defined before use; names are unique."""
        defined = {t.name for t in self.inputs} | set(self.initializers) | {""}
        seen_nodes = set()
        for n in self.nodes:
            if n.name in seen_nodes:
                raise ValueError(f"duplicate node name {n.name!r}")
            seen_nodes.add(n.name)
            for i in n.inputs:
                if i not in defined:
                    raise ValueError(f"node {n.name!r} ({n.op}) uses {i!r} before it is defined")
            for o in n.outputs:
                if o in defined and o:
                    raise ValueError(f"value {o!r} is defined twice (again by node {n.name!r})")
                defined.add(o)
        for t in self.outputs:
            if t.name not in defined:
                raise ValueError(f"graph output {t.name!r} is never produced")


def shape_str(shape: Sequence[Dim]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"
