"""copy_weights (default on): the linears' weights are put in 2 MB pages at open, either the
package mapping itself (when the page cache holds the file in 2 MB folios) or a copy into
anonymous huge-page memory. Same bits out as running from the package mapping as it is, for
every weight format, and the session says how many bytes it copied."""
from __future__ import annotations

import sys
from pathlib import Path

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


def _pmd_fraction(path) -> float:
    """Fraction of this process's mapping of `path` mapped with 2 MB pages (/proc/self/smaps)."""
    want = str(Path(path).resolve())
    rss = pmd = 0
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split(maxsplit=5)
        if len(head) >= 5 and "-" in head[0] and not head[0].endswith(":"):
            inside = len(head) == 6 and head[5] == want
        elif inside and line.startswith("Rss:"):
            rss += int(line.split()[1])
        elif inside and line.startswith("FilePmdMapped:"):
            pmd += int(line.split()[1])
    return pmd / rss if rss else 0.0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="transparent huge pages: Linux only")
def test_weights_in_2mb_pages_from_the_mapping_or_copied(tmp_path):
    # A 40 MB fp32 package (past the 32 MB floor of the page-cache path), freshly written, so its
    # page cache holds small folios: the session either re-reads it into 2 MB folios (then the
    # mapping must be in 2 MB pages and nothing copied) or copies the linears; same logits either way.
    d = tmp_path / "hf"
    make_hf_model(d, "llama", seed=5, hidden_size=1024, intermediate_size=2048, num_hidden_layers=1,
                  num_attention_heads=8, num_key_value_heads=4, vocab_size=512)
    pkg = export_hf(d, tmp_path / "big.lbpk", scheme="fp32")
    assert Path(pkg).stat().st_size > (32 << 20)
    info_map, mapped = _run(pkg, False, 1)
    assert info_map["copied_bytes"] == 0
    s = LlmSession(pkg, threads=1, copy_weights=True)
    info = s.info
    if info["copied_bytes"] == 0:
        assert _pmd_fraction(pkg) >= 0.95, "nothing copied, but the mapping is not in 2 MB pages"
    else:
        assert info["copied_bytes"] >= info["weight_bytes"] - 4 * info["hidden_size"]
    out = [s.prefill(PROMPT)]
    tok = int(np.argmax(out[0]))
    for _ in range(4):
        out.append(s.decode(tok))
        tok = int(np.argmax(out[-1]))
    assert np.array_equal(np.stack(out), mapped)
