"""Per-op profile events of the LLM runtime (lb_llm_profile_*, LlmSession.profile_events,
`lowbit bench-llm --profile`)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from lowbit.cli import main

# the residual adds are fused into the next RMSNorm (add_rms_norm: attn_norm, ffn_norm, final_norm)
LAYER_OPS = {"attn_norm", "qkv", "rope", "kv_store", "attention", "o_proj", "ffn_norm", "gate_up", "swiglu", "down"}


@pytest.fixture(scope="module")
def tiny_w4_pkg(tiny_llama, tmp_path_factory):
    from lowbit.llm.export import export_hf

    d, _ = tiny_llama
    return export_hf(d, tmp_path_factory.mktemp("pkg_w4") / "tiny_w4.lbpk", scheme="w4a8-g32")


def _run(pkg, n_prompt=9, n_gen=5, threads=1):
    from lowbit.llm.session import LlmSession

    s = LlmSession(pkg, threads=threads)
    s.profile(True)
    logits = s.prefill(np.arange(3, 3 + n_prompt))
    tok = int(np.argmax(logits))
    for _ in range(n_gen):
        tok = int(np.argmax(s.decode(tok)))
    return s, s.profile_events()


def test_llm_profile_covers_every_op_of_every_layer(tiny_w4_pkg):
    s, ev = _run(tiny_w4_pkg)
    layers = s.info["num_layers"]
    for phase, calls in (("prefill", 1), ("decode", 5)):
        got = {(e["layer"], e["op"]) for e in ev if e["phase"] == phase}
        want = {(l, op) for l in range(layers) for op in LAYER_OPS} | {(-1, "embed"), (-1, "final_norm"),
                                                                        (-1, "lm_head")}
        assert got == want, phase
        for e in ev:
            if e["phase"] != phase:
                continue
            assert e["calls"] == calls, e
            assert e["ns"] >= 0 and e["isa"] and e["kernel"]
    # quantized linears name the qlinear kernel that ran: GEMV per decoded token, GEMM for the prompt
    lin = [e for e in ev if e["op"] in ("qkv", "o_proj", "gate_up", "down")]
    assert all(e["weight_bytes"] > 0 for e in lin)
    assert all("gemv" in e["kernel"] for e in lin if e["phase"] == "decode")
    assert all("gemm" in e["kernel"] for e in lin if e["phase"] == "prefill")
    # the ops of a pass add up to (at most) the pass; the gap is only argument checks
    st = s.stats()
    dec_ns = sum(e["ns"] for e in ev if e["phase"] == "decode")
    assert dec_ns <= st["decode_seconds"] * 1e9
    assert dec_ns >= 0.5 * st["decode_seconds"] * 1e9


def test_llm_profile_off_by_default_and_cleared(tiny_fp32_pkg):
    from lowbit.llm.session import LlmSession

    s = LlmSession(tiny_fp32_pkg, threads=1)
    s.prefill([1, 2, 3])
    assert s.profile_events() == []  # never enabled: nothing recorded
    s.profile(True)
    s.decode(4)
    ev = s.profile_events()
    assert ev and all(e["phase"] == "decode" for e in ev)
    assert {e["kernel"] for e in ev if e["op"] == "qkv"} == {"linear_f32"}
    s.profile(False)  # clears, and stops recording
    s.decode(5)
    assert s.profile_events() == []


def test_llm_profile_records_sampling(tiny_fp32_pkg):
    from lowbit.llm.session import LlmSession

    s = LlmSession(tiny_fp32_pkg, threads=2)
    s.profile(True)
    out = s.generate([1, 5, 9], 6, temperature=0.8, top_k=5, seed=3, stop=[])
    samp = [e for e in s.profile_events() if e["op"] == "sampling"]
    assert len(samp) == 1 and samp[0]["calls"] == len(out) and samp[0]["kernel"] == "top_k"


def test_llm_profile_summary(tiny_w4_pkg):
    from lowbit.llm.profile import format_table, summarize

    _, ev = _run(tiny_w4_pkg)
    rows = summarize(ev, "decode", tokens=5)
    assert [r["op"] for r in rows][:3] == ["embed", "attn_norm", "qkv"]
    assert abs(sum(r["share"] for r in rows) - 1.0) < 1e-9
    assert all(r["gbps"] > 0 for r in rows if r["op"] in ("qkv", "gate_up", "down", "lm_head"))
    per_layer = summarize(ev, "prefill", tokens=9, per_layer=True)
    assert {r["layer"] for r in per_layer} == {-1, 0, 1}
    assert "total" in format_table(rows)
    with pytest.raises(ValueError, match="phase"):
        summarize(ev, "both")


def test_llm_cli_bench_profile(tiny_w4_pkg, tmp_path, capsys):
    out = tmp_path / "p.json"
    assert main(["bench-llm", str(tiny_w4_pkg), "--prompt-tokens", "8", "--gen-tokens", "3", "--profile",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "decode per-op profile" in text and "gate_up" in text and "lm_head" in text
    rec = json.loads(out.read_text())
    assert {r["op"] for r in rec["profile"]["decode"]} >= {"qkv", "attention", "down", "lm_head"}
