"""copy_weights (default on): the linears' weights are copied at open into anonymous huge-page
memory. Same bits out as running from the package mapping, for every weight format, and the
session says how many bytes it copied."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from lowbit.llm.export import export_hf
from lowbit.llm.session import LlmSession

from llm_helpers import make_hf_model

PROMPT = [1, 17, 42, 99, 3, 250, 7]


def _run(pkg, copy, threads):
    s = LlmSession(pkg, threads=threads, copy_weights=copy)
    first = s.prefill(PROMPT)
    out = [first]
    tok = int(np.argmax(first))
    for _ in range(4):
        out.append(s.decode(tok))
        tok = int(np.argmax(out[-1]))
    return s.info, np.stack(out)


@pytest.mark.parametrize("scheme, inter", [("w4a8-g32", None), ("w8a8d", 72), ("fp32", None)])
def test_copied_weights_give_the_same_bits(tiny_llama, tmp_path, scheme, inter):
    # intermediate 72: the int8 down projection has k = 72, padded to kp = 96 in the package,
    # which the copy has to re-derive (packed_weight_init's group is k, not kp).
    d = tiny_llama[0]
    if inter is not None:
        d = tmp_path / "hf"
        make_hf_model(d, "llama", seed=3, intermediate_size=inter)
    pkg = export_hf(d, tmp_path / f"{scheme}.lbpk", scheme=scheme)
    info_map, mapped = _run(pkg, False, 1)
    assert info_map["copied_bytes"] == 0
    for threads in (1, 2):
        info, copied = _run(pkg, True, threads)
        assert np.array_equal(copied, mapped), f"{scheme}, {threads} threads: copy changed the logits"
        if sys.platform.startswith("linux"):
            # every linear (not the embedding table), 64-byte aligned each
            n_lin = 4 * info["num_layers"] + 1
            assert 0 < info["copied_bytes"] <= info["weight_bytes"] + 64 * n_lin
            assert info["copied_bytes"] >= info["weight_bytes"] - 4 * info["hidden_size"]
        else:
            assert info["copied_bytes"] == 0


def test_read_bandwidth_probe(tiny_llama, tmp_path):
    from lowbit import LowbitError

    d, _ = tiny_llama
    pkg = export_hf(d, tmp_path / "q.lbpk", scheme="w4a8-g32")
    for copy in (True, False):
        s = LlmSession(pkg, threads=2, copy_weights=copy)
        g = s.read_bandwidth(2)
        assert np.isfinite(g) and g > 0
    with pytest.raises(LowbitError, match="negative repeats"):
        s.read_bandwidth(-1)
