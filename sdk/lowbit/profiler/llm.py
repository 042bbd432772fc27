"""Profiling a decoder-LLM package (manifest kind "llm"): prefill and decode tokens/s, the
per-token decode latency distribution, and decode's achieved weight bandwidth against the
device's measured read bandwidth (decode streams every weight byte once per token).

After the timed runs, one more prefill + decode runs with the runtime's per-op events on
(`LlmSession.profile`): per op (summed over layers) its ms per token, share, kernel and ISA, and
for the linears their weight-read GB/s and fraction of the read roofline; per layer its ms per
token. The timed numbers come from the runs without events (events cost a clock read per op)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np

from lowbit.profiler import stats
from lowbit.profiler.device import fingerprint, roofline_for
from lowbit.profiler.report import SCHEMA, Report


def profile_llm(path, *, prompt_tokens: int = 32, new_tokens: int = 16, runs: int = 3, warmup: int = 1,
                threads: Optional[int] = None, measure: bool = False) -> Report:
    import lowbit
    from lowbit.llm.session import LlmSession
    from lowbit.profiler.collect import read_package, rss_high_water

    n_threads = int(threads or lowbit.native().default_threads())
    sess = LlmSession(path, threads=n_threads)
    info = sess.info
    prompt_tokens = max(1, min(prompt_tokens, sess.context_length - new_tokens - 1))
    rng = np.random.default_rng(0)
    prompt = rng.integers(0, sess.vocab_size, size=prompt_tokens).astype(np.int32)
    prefill_s, decode_s = [], []
    for r in range(warmup + runs):
        sess.reset()
        t0 = time.perf_counter_ns()
        logits = sess.prefill(prompt)
        t1 = time.perf_counter_ns()
        per_tok = []
        tok = int(np.argmax(logits))
        for _ in range(new_tokens):
            a = time.perf_counter_ns()
            logits = sess.decode(tok)
            per_tok.append((time.perf_counter_ns() - a) / 1e9)
            tok = int(np.argmax(logits))
        if r >= warmup:
            prefill_s.append((t1 - t0) / 1e9)
            decode_s.extend(per_tok)
    roof = roofline_for(n_threads, measure_if_missing=measure)
    dec = stats.summarize([s * 1e3 for s in decode_s])
    pre = stats.summarize([s * 1e3 for s in prefill_s])
    weight_bytes = int(info.get("weight_bytes", 0))
    decode_gbps = weight_bytes / (dec["median"] / 1e3) / 1e9 if dec["median"] else None
    llm = {
        "prompt_tokens": int(prompt_tokens), "new_tokens": int(new_tokens), "runs": runs,
        "prefill_ms": pre, "decode_ms_per_token": dec,
        "prefill_tokens_per_s": prompt_tokens / (pre["median"] / 1e3) if pre["median"] else None,
        "decode_tokens_per_s": 1e3 / dec["median"] if dec["median"] else None,
        "weight_bytes_per_token": weight_bytes,
        "decode_gbps": decode_gbps,
        "decode_bandwidth_fraction": (decode_gbps / roof["read_gbps"]) if decode_gbps and roof.get("read_gbps") else None,
        "kv_bytes": int(info.get("kv_bytes", 0)),
        "layers": int(info.get("num_layers", 0)),
    }
    llm.update(_op_breakdown(sess, prompt, new_tokens, roof.get("read_gbps")))
    pkg = read_package(path)
    warnings = []
    if roof["source"] == "none":
        warnings.append("no roofline: this device has no measurement yet (`lowbit doctor --measure`)")
    data = {
        "schema": SCHEMA, "tool": "lowbit.profile",
        "package": {"path": str(path), "name": pkg["manifest"].get("model") or Path(path).stem,
                    "sha256": pkg["sha256"], "scheme": pkg["manifest"].get("scheme"), "kind": "llm"},
        "device": fingerprint(n_threads), "roofline": roof,
        "config": {"runs": runs, "warmup": warmup, "threads": n_threads},
        "latency_ms": {}, "ops": [], "timeline": [],
        "memory": {"weights_bytes": weight_bytes, "kv_cache_bytes": int(info.get("kv_bytes", 0)),
                   **({"process_rss_high_water_bytes": rss_high_water()} if rss_high_water() else {})},
        "outputs_gap": {}, "overhead": {}, "compare": [], "llm": llm, "warnings": warnings,
    }
    return Report(data)


def _op_breakdown(sess, prompt, new_tokens: int, read_gbps: Optional[float]) -> dict:
    """One profiled prefill + decode: per-op rows for both phases and per-layer decode times."""
    from lowbit.llm.profile import summarize

    sess.reset()
    sess.profile(True)
    try:
        logits = sess.prefill(prompt)
        tok = int(np.argmax(logits))
        for _ in range(new_tokens):
            tok = int(np.argmax(sess.decode(tok)))
        events = sess.profile_events()
    finally:
        sess.profile(False)
        sess.reset()
    out = {"ops_decode": summarize(events, "decode", new_tokens),
           "ops_prefill": summarize(events, "prefill", len(prompt))}
    for r in out["ops_decode"]:
        r["roofline_fraction"] = r["gbps"] / read_gbps if r["gbps"] and read_gbps else None
    per_layer: dict = {}
    for phase, tokens in (("decode", new_tokens), ("prefill", len(prompt))):
        for r in summarize(events, phase, tokens, per_layer=True):
            if r["layer"] is not None and r["layer"] >= 0:
                row = per_layer.setdefault(r["layer"], {"layer": r["layer"], "decode_ms_per_token": 0.0,
                                                        "prefill_ms_per_token": 0.0})
                row[f"{phase}_ms_per_token"] += r["ms_per_token"]
    out["per_layer"] = [per_layer[k] for k in sorted(per_layer)]
    return out
