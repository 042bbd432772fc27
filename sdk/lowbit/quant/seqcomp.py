"""Error-compensating sequential quantization (after GPFQ, Lybrand & Saab, and Qronos / "GPTQ with
quantized inputs"): the layers are quantized in graph order, each one seeing the input that the
already-quantized model actually feeds it (int8 activations, earlier layers quantized), X_q, next to
the float model's input X_f:

* a depthwise conv (a BatchNorm-folded 3x3/5x5 filter per channel, the layers a CNN amplifies) is
  refitted per channel to the FLOAT layer's output,
      min_w || X_f w_f - X_q w ||^2 + lam || w - w_f ||^2   ->   w* = (H + lam I)^-1 (C^T + lam I) w_f,
  H = X_q^T X_q, C = X_f^T X_q (ridge towards the float filter: directions the calibration data
  does not excite keep it), then GPTQ-rounded with H (the refit's residual is orthogonal to X_q, so
  GPTQ's error is measured in the same norm);
* MatMuls and group-1 convs are GPTQ-rounded with the Hessian of X_q (no refit: refitting them to
  the float output lost accuracy on all-MiniLM-L6-v2 and gained nothing on EfficientNet-Lite0),
  when the calibration data gives at least as many rows as inputs (K); with fewer (a singular
  Hessian) they are rounded to nearest;
* a conv's bias then absorbs the mean difference between the float layer's output on X_f and the
  quantized layer's on X_q (bias correction with the quantized input).

Both models run side by side in the numpy reference executor, one calibration sample at a time
(graphs imported with batch 1 stay valid), tensors freed after their last use.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional

import numpy as np

from lowbit import refexec
from lowbit.ir import Graph, Node, QuantWeight
from lowbit.quant import calibrate as cal
from lowbit.quant.gptq import _one_blas_thread, gptq_per_row, gptq_quantize

ROWS_MAX = 65536  # im2col / token rows per layer kept for H and C (spread over the samples)
DW_POSITIONS_MAX = 16384  # per depthwise channel


def _smoothed(x: np.ndarray, s: Optional[np.ndarray], axis: int) -> np.ndarray:
    if s is None:
        return np.asarray(x, np.float32)
    shape = [1] * x.ndim
    shape[axis] = -1
    return (np.asarray(x, np.float32) / s.reshape(shape)).astype(np.float32)


def _last_use(graph: Graph) -> Dict[str, int]:
    last: Dict[str, int] = {}
    for i, n in enumerate(graph.nodes):
        for t in n.inputs:
            if t:
                last[t] = i
    return last


def sequential_quantize(fgraph: Graph, q: Graph, layers: List[Node], feeds: List[Dict[str, np.ndarray]],
                        quantize_layer: Callable[[Node, np.ndarray, Optional[np.ndarray], Optional[np.ndarray]],
                                                 Optional[QuantWeight]],
                        smooth: Dict[str, np.ndarray], *, damp: float = 0.01, bias_correction: bool = True,
                        progress: bool = True, seed: int = 0) -> Dict[str, QuantWeight]:
    """Quantize ``layers`` of ``q`` (nodes of ``q``, act_quant already attached, weights float and
    smoothed) in graph order. ``quantize_layer(node, W* [N, K], H, Hdw)`` returns the QuantWeight
    (GPTQ with H [K, K] or per-channel Hdw [N, kk, kk]) or None to leave the layer to the caller.
    ``fgraph`` is the float (unsmoothed) graph with the same node order. Returns {weight name: QuantWeight}."""
    layer_idx = {n.name for n in layers}
    out_names = {t.name for t in q.outputs}
    last = _last_use(q)
    envs_f, envs_q = [], []
    for feed in feeds:
        ef: Dict[str, object] = {"": None, **fgraph.initializers}
        eq: Dict[str, object] = {"": None}
        for t in q.inputs:
            ef[t.name] = np.asarray(feed[t.name])
            eq[t.name] = np.asarray(feed[t.name])
        envs_f.append(ef)
        envs_q.append(eq)
    done: Dict[str, QuantWeight] = {}
    rng_seed = np.random.default_rng(seed).integers(1 << 31)
    with _one_blas_thread():
        for i, (fn, qn) in enumerate(cal.progress(list(zip(fgraph.nodes, q.nodes)), "error-compensating quantization",
                                                  len(q.nodes), progress)):
            if qn.name in layer_idx and qn.inputs[1] not in done:
                qw = _fit_layer(qn, q, envs_f, envs_q, smooth.get(qn.inputs[0]), quantize_layer, damp,
                                int(rng_seed) + i)
                if qw is not None:
                    from lowbit.quant.pipeline import _weight_nk  # noqa: PLC0415

                    qw.layout, qw.orig_shape = _weight_nk(qn, q.initializers[qn.inputs[1]])[1:]
                    q.initializers[qn.inputs[1]] = qw
                    done[qn.inputs[1]] = qw
            for ef, eq in zip(envs_f, envs_q):
                refexec.run_node(fn, ef)
                _run_q(qn, q, eq)
            if qn.name in layer_idx and qn.inputs[1] in done and bias_correction:
                _correct_bias(qn, q, fgraph, envs_f, envs_q)
            for t in set(qn.inputs):
                if t and last.get(t) == i and t not in out_names and t not in q.initializers:
                    for ef, eq in zip(envs_f, envs_q):
                        ef.pop(t, None)
                        eq.pop(t, None)
    return done


def _run_q(node: Node, q: Graph, env: Dict[str, object]) -> None:
    for t in node.inputs:  # initializers looked up lazily: they change while the pass runs
        if t and t not in env and t in q.initializers:
            env[t] = q.initializers[t]
    refexec.run_node(node, env)
    for t in node.inputs:
        if t in q.initializers:
            env.pop(t, None)


def _fit_layer(n: Node, q: Graph, envs_f, envs_q, s, quantize_layer, damp, seed) -> Optional[QuantWeight]:
    if n.op not in ("MatMul", "Conv") or (n.op == "Conv" and n.attrs.get("group", 1) != 1 and
                                          not cal.is_depthwise(n, q)):
        return None
    from lowbit.quant.pipeline import _weight_nk  # noqa: PLC0415

    axis = 1 if n.op == "Conv" else -1
    aq = n.attrs.get("act_quant")
    wnk = _weight_nk(n, q.initializers[n.inputs[1]])[0]
    xs_q = [refexec.quantize_activation(eq[n.inputs[0]], aq, axis) if aq is not None else
            _smoothed(eq[n.inputs[0]], s, axis) for eq in envs_q]
    nsamp = len(xs_q)
    if not cal.is_depthwise(n, q):
        # group-1 convs and MatMuls: GPTQ with the Hessian of the quantized input, no weight refit
        # (refitting them lost accuracy on MiniLM and gained nothing on EfficientNet-Lite0)
        per = max(1, ROWS_MAX // nsamp)
        Xq = np.concatenate([cal._rows(x, n, q, np.random.default_rng(seed + j), per) for j, x in enumerate(xs_q)])
        if Xq.shape[0] > ROWS_MAX:
            Xq = Xq[np.random.default_rng(seed).choice(Xq.shape[0], ROWS_MAX, replace=False)]
        if Xq.shape[0] < wnk.shape[1]:
            # fewer rows than inputs (7x7 feature maps of a few images, a classifier): the Hessian is
            # singular and GPTQ would push the rounding error into the directions the calibration data
            # does not excite, which other inputs do; round to nearest (docs/quantization.md, session 12)
            return quantize_layer(n, wnk, None, None)
        H = (Xq.T @ Xq).astype(np.float64)
        return quantize_layer(n, wnk, 2.0 * H / Xq.shape[0], None)
    # depthwise: one [kh*kw] least-squares refit per channel on the same sampled positions
    per = max(1, DW_POSITIONS_MAX // nsamp)
    xs_f = [_smoothed(ef[n.inputs[0]], s, axis) for ef in envs_f]
    Pf = np.concatenate([cal._dw_patches(x, n, q, np.random.default_rng(seed + j), per)
                         for j, x in enumerate(xs_f)], axis=1)  # [C, R, kk]
    Pq = np.concatenate([cal._dw_patches(x, n, q, np.random.default_rng(seed + j), per)
                         for j, x in enumerate(xs_q)], axis=1)
    H = np.matmul(Pq.transpose(0, 2, 1), Pq).astype(np.float64)
    C = np.matmul(Pf.transpose(0, 2, 1), Pq).astype(np.float64)
    lam = damp * np.maximum(np.einsum("ckk->ck", H).mean(axis=1), 1e-12)  # [C]
    eye = np.eye(H.shape[1])[None]
    A = C + lam[:, None, None] * eye
    B = H + lam[:, None, None] * eye
    # W*_c = w_c A_c B_c^-1  <=>  B_c W*_c^T = A_c^T w_c^T  (B symmetric)
    wstar = np.linalg.solve(B, np.einsum("cji,cj->ci", A, wnk.astype(np.float64))[..., None])[..., 0]
    return quantize_layer(n, wstar.astype(np.float32), None, 2.0 * H / Pq.shape[1])


def _correct_bias(n: Node, q: Graph, fgraph: Graph, envs_f, envs_q) -> None:
    """bias += mean over samples and positions of (float layer output - quantized layer output)."""
    if n.op != "Conv" or len(n.inputs) < 3 or not n.inputs[2]:
        return
    bias = q.initializers.get(n.inputs[2])
    if not isinstance(bias, np.ndarray) or len(q.consumers(n.inputs[2])) != 1:
        return
    out = n.outputs[0]
    d = np.zeros(bias.shape[0], np.float64)
    cnt = 0
    for ef, eq in zip(envs_f, envs_q):
        diff = np.asarray(ef[out], np.float64) - np.asarray(eq[out], np.float64)
        d += diff.sum(axis=tuple(i for i in range(diff.ndim) if i != 1))
        cnt += diff.size // diff.shape[1]
    d /= max(cnt, 1)
    q.initializers[n.inputs[2]] = (bias + d).astype(np.float32)
    for eq in envs_q:
        eq[out] = (np.asarray(eq[out], np.float32) + d.astype(np.float32).reshape(1, -1, 1, 1)).astype(np.float32)
