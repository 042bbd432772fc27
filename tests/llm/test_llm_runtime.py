"""The native decoder (fp32 package) against transformers, and the runtime's options and errors."""
from __future__ import annotations

import numpy as np
import pytest

from llm_helpers import make_hf_model, torch_greedy, torch_logits
import lowbit
from lowbit import LowbitError
from lowbit.llm.export import export_hf
from lowbit.llm.session import LlmSession

kFp32LogitRelTol = 1e-3  # the bar: fp32 package logits within 1e-3 relative of transformers
PROMPT = [5, 17, 99, 3, 250, 41, 8, 77]


def rel_err(got, want):
    return float(np.abs(got - want).max() / np.abs(want).max())


@pytest.fixture(scope="module")
def sess(tiny_fp32_pkg):
    return LlmSession(tiny_fp32_pkg, threads=2, kv_cache="f32")


def test_llm_fp32_logits_match_transformers(sess, tiny_llama):
    _, model = tiny_llama
    ids = np.random.default_rng(0).integers(0, 256, 40)
    sess.reset()
    assert rel_err(sess.logits(ids), torch_logits(model, ids)) <= kFp32LogitRelTol


@pytest.mark.parametrize("kv", ["f32", "f16"])
def test_llm_fp32_greedy_64_tokens_match_transformers(tiny_fp32_pkg, tiny_llama, kv):
    _, model = tiny_llama
    want = torch_greedy(model, PROMPT, 64)
    got = LlmSession(tiny_fp32_pkg, threads=2, kv_cache=kv).generate(PROMPT, 64, stop=[])
    assert got == want


def test_llm_int8_kv_cache_stays_close(tiny_fp32_pkg, tiny_llama):
    _, model = tiny_llama
    ids = np.random.default_rng(2).integers(0, 256, 48)
    got = LlmSession(tiny_fp32_pkg, kv_cache="int8").logits(ids)
    want = torch_logits(model, ids)
    err = rel_err(got, want)
    assert 0 < err < 0.05  # int8 K/V with group-32 scales: small but non-zero error
    agree = np.mean(got.argmax(-1) == want.argmax(-1))
    assert agree >= 0.9


def test_llm_chunked_prefill_and_decode_agree(tiny_fp32_pkg):
    ids = np.random.default_rng(3).integers(0, 256, 37)
    a = LlmSession(tiny_fp32_pkg, kv_cache="f32", prefill_chunk=5).logits(ids)
    b = LlmSession(tiny_fp32_pkg, kv_cache="f32")
    rows = [b.prefill(ids[:20])]
    rows += [b.decode(t) for t in ids[20:]]
    np.testing.assert_allclose(a[19], rows[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a[20:], np.stack(rows[1:]), rtol=1e-4, atol=1e-4)
    assert b.position == 37


def test_llm_results_do_not_depend_on_thread_count(tiny_fp32_pkg):
    ids = np.random.default_rng(4).integers(0, 256, 33)
    one = LlmSession(tiny_fp32_pkg, threads=1).logits(ids)
    two = LlmSession(tiny_fp32_pkg, threads=2).logits(ids)
    three = LlmSession(tiny_fp32_pkg, threads=3).logits(ids)
    assert np.array_equal(one, two) and np.array_equal(one, three)


def test_llm_sampling_seeded_and_constrained(sess):
    kw = dict(temperature=1.3, top_k=20, top_p=0.9, seed=1234, stop=[])
    a = sess.generate(PROMPT, 40, **kw)
    assert a == sess.generate(PROMPT, 40, **kw)  # same seed, same tokens
    assert a != sess.generate(PROMPT, 40, **{**kw, "seed": 99})
    greedy = sess.generate(PROMPT, 20, stop=[])
    assert sess.generate(PROMPT, 20, temperature=5.0, top_k=1, seed=7, stop=[]) == greedy
    assert sess.generate(PROMPT, 20, temperature=5.0, top_p=1e-6, seed=7, stop=[]) == greedy
    # top-k: every sampled token is among the k largest logits at its step
    toks = sess.generate(PROMPT, 12, temperature=2.0, top_k=3, seed=5, stop=[])
    sess.reset()
    logits = sess.prefill(PROMPT)
    for t in toks:
        assert t in np.argsort(-logits)[:3]
        logits = sess.decode(t)


def test_llm_decode_greedy_is_argmax_of_decode(sess):
    """decode_greedy (decode + the native greedy sampler, what bench/llm.py times) = argmax of decode's logits."""
    want = sess.generate(PROMPT, 16, stop=[])
    sess.reset()
    tok = int(np.argmax(sess.prefill(PROMPT)))
    got = [tok]
    for _ in range(15):
        tok = sess.decode_greedy(tok)
        got.append(tok)
    assert got == want
    sess.reset()
    tok = int(np.argmax(sess.prefill(PROMPT)))
    for t in want[1:]:
        assert int(np.argmax(sess.decode(tok))) == t
        tok = t
    with pytest.raises(Exception, match="out of range|vocab"):
        sess.decode_greedy(-1)


def test_llm_repetition_penalty_changes_greedy_choice(sess):
    sess.reset()
    logits = sess.prefill(PROMPT)
    best = int(np.argmax(logits))
    tok = sess._rt.sample(logits.copy(), 0.0, 0, 1.0, 1e6, np.array([best], np.int32))
    assert tok != best
    assert sess._rt.sample(logits.copy(), 0.0, 0, 1.0, 1.0, np.array([best], np.int32)) == best


def test_llm_stop_tokens_and_streaming_callback(sess):
    full = sess.generate(PROMPT, 30, stop=[])
    stop_tok = full[10]
    first = full.index(stop_tok)
    out = sess.generate(PROMPT, 30, stop=[stop_tok])
    assert out == full[:first + 1]
    seen = []
    assert sess.generate(PROMPT, 30, stop=[], callback=seen.append) == full and seen == full
    stopped = sess.generate(PROMPT, 30, stop=[], callback=lambda t: len(seen2.append(t) or seen2) < 5)
    assert stopped == full[:5]
    assert list(sess.stream(PROMPT, 12, stop=[])) == full[:12]


seen2: list = []


def test_llm_callback_exception_propagates(sess):
    def boom(t):
        raise KeyError("from callback")

    with pytest.raises(KeyError, match="from callback"):
        sess.generate(PROMPT, 5, callback=boom)


def test_llm_context_and_input_errors(tiny_fp32_pkg, sess):
    small = LlmSession(tiny_fp32_pkg, max_context=16)
    assert small.info["kv_capacity"] == 16
    with pytest.raises(LowbitError, match="LB_ERR_CONTEXT.*exceeds"):
        small.generate(list(range(10)), 8)
    with pytest.raises(LowbitError, match="LB_ERR_CONTEXT"):
        small.prefill(np.arange(17))
    small.prefill(np.arange(16))
    with pytest.raises(LowbitError, match="LB_ERR_CONTEXT"):
        small.decode(3)
    with pytest.raises(LowbitError, match="context length 256"):
        sess.generate([1] * 200, 100)
    with pytest.raises(LowbitError, match=r"token id 256 .*out of range \[0, 256\)"):
        sess.generate([1, 256], 4)
    with pytest.raises(LowbitError, match="token id -1"):
        sess.decode(-1)
    with pytest.raises(LowbitError, match="temperature"):
        sess.generate(PROMPT, 4, temperature=-1)
    with pytest.raises(LowbitError, match="top_p"):
        sess.generate(PROMPT, 4, temperature=1, top_p=0)
    with pytest.raises(LowbitError, match="top_k"):
        sess.generate(PROMPT, 4, top_k=-2)
    with pytest.raises(LowbitError, match="repetition_penalty"):
        sess.generate(PROMPT, 4, repetition_penalty=0)
    with pytest.raises(LowbitError, match="at least one token"):
        sess.generate([], 4)
    with pytest.raises(LowbitError, match="max_new_tokens"):
        sess.generate(PROMPT, -1)
    # a failed call leaves the session usable
    assert sess.generate(PROMPT, 3, stop=[]) == sess.generate(PROMPT, 3, stop=[])


def test_llm_h2o_eviction(tiny_fp32_pkg):
    ids = np.random.default_rng(5).integers(0, 256, 60)
    full = LlmSession(tiny_fp32_pkg, kv_cache="f32").logits(ids)
    # a budget that never fills evicts nothing: identical results
    same = LlmSession(tiny_fp32_pkg, kv_cache="f32", h2o_budget=64).logits(ids)
    np.testing.assert_allclose(same, full, rtol=1e-5, atol=1e-5)
    # a small budget: sequences longer than the cache run, memory stays at the budget
    s = LlmSession(tiny_fp32_pkg, kv_cache="f32", h2o_budget=24, h2o_recent=8)
    assert s.info["kv_capacity"] == 24
    got = s.logits(ids)
    assert s.position == 60 and np.all(np.isfinite(got))
    np.testing.assert_allclose(got[:16], full[:16], rtol=1e-4, atol=1e-4)  # first chunk (budget - recent): no eviction yet
    assert not np.allclose(got[40:], full[40:], atol=1e-4)
    assert len(s.generate(ids[:40], 100, stop=[])) == 100


def test_llm_package_errors(tmp_path, tiny_fp32_pkg):
    with pytest.raises(LowbitError, match="LB_ERR_IO"):
        LlmSession(tmp_path / "missing.lbpk")
    data = bytearray(tiny_fp32_pkg.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "corrupt.lbpk"
    bad.write_bytes(bytes(data))
    with pytest.raises(LowbitError, match="LB_ERR_CHECKSUM"):
        LlmSession(bad)
    from lowbit.exporters.lbpk_container import PackageWriter

    with PackageWriter(tmp_path / "graph.lbpk") as w:
        w.manifest["kind"] = "graph"
        w.add_tensor("x", np.zeros(4, np.float32))
    with pytest.raises(LowbitError, match="not an LLM package"):
        LlmSession(tmp_path / "graph.lbpk")
    with pytest.raises(LowbitError, match="kv_cache"):
        LlmSession(tiny_fp32_pkg, kv_cache="int4")


@pytest.mark.parametrize("arch, kw", [("qwen2", {}), ("mistral", {"sliding_window": 8}),
                                      ("llama", {"tie_word_embeddings": True})])
def test_llm_fp32_other_architectures(tmp_path, arch, kw):
    model = make_hf_model(tmp_path / "m", arch, **kw)
    pkg = export_hf(tmp_path / "m", tmp_path / "m.lbpk", scheme="fp32")
    ids = np.random.default_rng(6).integers(0, 256, 24)
    s = LlmSession(pkg, kv_cache="f32")
    assert rel_err(s.logits(ids), torch_logits(model, ids)) <= kFp32LogitRelTol
    assert s.generate(PROMPT, 16, stop=[]) == torch_greedy(model, PROMPT, 16)
