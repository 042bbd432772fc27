"""lowbit.accuracy.error_split: the activation and the weight halves of a quantized graph's error,
with smoothed layers (ActQuant.smooth) handled exactly. Checked against the quantized graph itself
with every activation quantizer made (almost) exact but its smoothing kept: that graph computes
what "activations float" must compute, and the float model with the quantizers put back must be
what "weights float" computes when those quantizers are (almost) exact."""
from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

from lowbit.accuracy import error_split, error_split_report
from lowbit.importers import import_onnx
from lowbit.quant.pipeline import QuantOptions, quantize_graph
from lowbit.refexec import RefExecutor


def _fine(graph):
    """A copy of ``graph`` whose static activation quantizers keep their range and smoothing but
    round 65536x finer (24-bit codes): the smoothing's 1/s stays, the rounding all but goes."""
    g = copy.copy(graph)
    g.nodes = [copy.copy(n) for n in graph.nodes]
    for n in g.nodes:
        n.attrs = dict(n.attrs)
        aq = n.attrs.get("act_quant")
        if aq is not None:
            n.attrs["act_quant"] = dataclasses.replace(aq, bits=24, scale=aq.scale / 65536.0,
                                                       zero_point=aq.zero_point * 65536)
    return g


def _out(graph, feed):
    return next(iter(RefExecutor(graph).run(feed).values()))


@pytest.mark.parametrize("model", ["mlp", "convnet"])
def test_error_split_halves(model, mlp_onnx, mlp_feeds, convnet_onnx, convnet_feeds):
    path, feeds = (mlp_onnx, mlp_feeds) if model == "mlp" else (convnet_onnx, convnet_feeds)
    fg = import_onnx(path)
    # smooth=True: every layer's input (depthwise included) is divided by its own s in the quantizer
    qg = quantize_graph(fg, "w8a8", feeds[:8], QuantOptions(smooth=True, progress=False))
    assert any(n.attrs.get("act_quant") is not None and n.attrs["act_quant"].smooth is not None for n in qg.nodes)
    halves = error_split(fg, qg)
    acts, wts = halves["activations_float"], halves["weights_float"]
    assert not any("act_quant" in n.attrs for n in acts.nodes)
    fine_q, fine_w = _fine(qg), _fine(wts)
    for f in feeds[:4]:
        ref, full = _out(fg, f), _out(qg, f)
        a, w = _out(acts, f), _out(wts, f)
        scale = np.abs(ref).max()
        # weights as quantized, activations float == the quantized graph with exact quantizers
        np.testing.assert_allclose(a, _out(fine_q, f), atol=2e-4 * scale)
        # float weights behind (almost) exact quantizers == the float model: the smoothing folds back
        np.testing.assert_allclose(_out(fine_w, f), ref, atol=2e-4 * scale)
        # and each half carries part of the error, not all or none of it
        assert np.abs(a - ref).max() > 1e-6 * scale and np.abs(w - ref).max() > 1e-6 * scale
        assert not np.allclose(a, full) and not np.allclose(w, full)
    rep = error_split_report(fg, qg, feeds[:4])
    assert set(rep) == {"quantized", "activations_float", "weights_float"}
    for k in rep:
        (r,) = rep[k].values()
        assert 10 < r["snr_db"] < 999 and r["cosine"] > 0.9, (k, r)
