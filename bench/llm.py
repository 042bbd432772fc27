"""Decoder-LLM benchmark: lowbit against llama.cpp (llama-cpp-python) on the same model, bits and
machine.

A TinyLlama-1.1B-shaped model (hidden 2048, intermediate 5632, 32 heads, 4 KV heads, vocab 32000;
--layers, default 22) with random weights is written once as a Hugging Face directory
(safetensors). lowbit exports it (w4a8-g32, w8a8d); the same float weights are written as GGUF
with the `gguf` package (Q4_0, Q8_0; q/k permuted the way llama.cpp's converter does, the output
head Q8_0 in both files, as lowbit's head is int8). Each engine prefills --prompt-tokens random
ids and then decodes --gen-tokens greedily, on 1 and 2 threads; the two engines run in alternating
rounds (--repeat each, order flipped every round) and the medians are compared. The cosine of the
two engines' first-token logits is printed as a check that they run the same model (the
quantizers differ: lowbit int8 embeddings / head per row, llama.cpp Q4_0 / Q8_0 per 32).
Without llama-cpp-python (the `bench` extra) it measures lowbit alone and says so.

Decode's fraction of the bandwidth roofline = bytes of weights read per token x tokens/s /
measured read bandwidth. Two probes run before every round, with the same thread count, and the
best of all of them is the roofline (a probe that lands on a busy moment only underestimates
it): lowbit's generic read microbenchmark (256 MB, fresh 4 KB pages), and a timed read of
exactly the bytes lowbit's decode streams per token, in place (`LlmSession.read_bandwidth`:
same pages and order). Each row says how lowbit's weights are paged: the package mapping in 2 MB
pages (the default when the page cache can hold the file in 2 MB folios: Linux 6.x with large
folios, docs/llm.md session 6) or copied into anonymous 2 MB pages. --mapped-too adds a third
engine, lowbit reading its weights from a fresh copy of the package (written now, so its page
cache is in small folios) with copy_weights=False: 4 KB pages, to measure what 2 MB pages are
worth in the same run. Each row also decodes once more with the
weight-read probe right before every token and prints the median of the per-token ratios (decode
GB/s / probe GB/s): both taken at the same moment, the fraction without the round-level figure's
median-against-best bias.

    .venv/bin/python bench/llm.py --layers 16 --json build/bench-llm.json
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

SHAPE = dict(hidden_size=2048, intermediate_size=5632, num_attention_heads=32, num_key_value_heads=4,
             vocab_size=32000, max_position_embeddings=2048, rms_norm_eps=1e-5, rope_theta=10000.0)
PAIRS = [("w4a8-g32", "Q4_0"), ("w8a8d", "Q8_0")]


def make_model(out: Path, layers: int, seed: int = 0) -> Path:
    """A random-weight HF Llama directory (fp16 safetensors, written with numpy: fast, no torch)."""
    from safetensors.numpy import save_file

    if (out / "config.json").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    h, f, v = SHAPE["hidden_size"], SHAPE["intermediate_size"], SHAPE["vocab_size"]
    hd = h // SHAPE["num_attention_heads"]
    kv = SHAPE["num_key_value_heads"] * hd

    def w(*shape, std=0.02):
        return (rng.standard_normal(shape, dtype=np.float32) * std).astype(np.float16)

    t = {"model.embed_tokens.weight": w(v, h), "model.norm.weight": np.ones(h, np.float16), "lm_head.weight": w(v, h)}
    for i in range(layers):
        p = f"model.layers.{i}."
        t.update({
            p + "input_layernorm.weight": np.ones(h, np.float16),
            p + "post_attention_layernorm.weight": np.ones(h, np.float16),
            p + "self_attn.q_proj.weight": w(h, h), p + "self_attn.k_proj.weight": w(kv, h),
            p + "self_attn.v_proj.weight": w(kv, h), p + "self_attn.o_proj.weight": w(h, h),
            p + "mlp.gate_proj.weight": w(f, h), p + "mlp.up_proj.weight": w(f, h), p + "mlp.down_proj.weight": w(h, f),
        })
    save_file(t, str(out / "model.safetensors"))
    cfg = dict(SHAPE, model_type="llama", architectures=["LlamaForCausalLM"], num_hidden_layers=layers,
               hidden_act="silu", bos_token_id=1, eos_token_id=2, tie_word_embeddings=False, torch_dtype="float16")
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    return out


def _permute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF rotate-half rows -> llama.cpp's interleaved RoPE rows (convert_hf_to_gguf's permute)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(model_dir: Path, out: Path, qtype_name: str) -> Path:
    import gguf
    from safetensors import safe_open

    if out.exists():
        return out
    cfg = json.loads((model_dir / "config.json").read_text())
    qt = getattr(gguf.GGMLQuantizationType, qtype_name)
    q8 = gguf.GGMLQuantizationType.Q8_0
    wr = gguf.GGUFWriter(str(out) + ".tmp", "llama")
    n_layers, nh, nkv = cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    wr.add_name("lowbit-bench-tinyllama")
    wr.add_context_length(cfg["max_position_embeddings"])
    wr.add_embedding_length(cfg["hidden_size"])
    wr.add_block_count(n_layers)
    wr.add_feed_forward_length(cfg["intermediate_size"])
    wr.add_rope_dimension_count(cfg["hidden_size"] // nh)
    wr.add_head_count(nh)
    wr.add_head_count_kv(nkv)
    wr.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    wr.add_rope_freq_base(cfg["rope_theta"])
    wr.add_file_type({"Q4_0": 2, "Q8_0": 7}[qtype_name])
    v = cfg["vocab_size"]
    wr.add_tokenizer_model("llama")
    wr.add_token_list([b"<unk>", b"<s>", b"</s>"] + [f"<t{i}>".encode() for i in range(3, v)])
    wr.add_token_scores([0.0] * v)
    wr.add_token_types([2, 3, 3] + [1] * (v - 3))
    wr.add_bos_token_id(1)
    wr.add_eos_token_id(2)
    wr.add_unk_token_id(0)

    names = {"model.embed_tokens.weight": ("token_embd.weight", qt), "model.norm.weight": ("output_norm.weight", None),
             "lm_head.weight": ("output.weight", q8)}
    hf = {"input_layernorm": ("attn_norm", None), "post_attention_layernorm": ("ffn_norm", None),
          "self_attn.q_proj": ("attn_q", qt), "self_attn.k_proj": ("attn_k", qt), "self_attn.v_proj": ("attn_v", qt),
          "self_attn.o_proj": ("attn_output", qt), "mlp.gate_proj": ("ffn_gate", qt), "mlp.up_proj": ("ffn_up", qt),
          "mlp.down_proj": ("ffn_down", qt)}
    for i in range(n_layers):
        for k, (g, q) in hf.items():
            names[f"model.layers.{i}.{k}.weight"] = (f"blk.{i}.{g}.weight", q)
    with safe_open(str(model_dir / "model.safetensors"), framework="numpy") as fh:
        for key, (gname, q) in names.items():
            a = fh.get_tensor(key).astype(np.float32)
            if key.endswith("q_proj.weight"):
                a = _permute_qk(a, nh)
            elif key.endswith("k_proj.weight"):
                a = _permute_qk(a, nkv)
            if q is None:
                wr.add_tensor(gname, a)
            else:
                wr.add_tensor(gname, gguf.quants.quantize(a, q), raw_dtype=q)
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()
    os.replace(str(out) + ".tmp", out)
    return out


def gguf_bytes_per_token(path: Path) -> int:
    """Bytes of every tensor but the embedding table, plus one embedding row."""
    import gguf

    r = gguf.GGUFReader(str(path))
    total = 0
    for t in r.tensors:
        if t.name == "token_embd.weight":
            total += int(t.n_bytes) // int(t.shape[-1] if t.shape[-1] > t.shape[0] else t.shape[0])
        else:
            total += int(t.n_bytes)
    return total


class LlamaCppEngine:
    """llama.cpp through llama-cpp-python: prefill the prompt in one batch, then greedy decode with
    llama.cpp's own greedy sampler (as lowbit's loop uses lowbit's: no per-token numpy work on either side)."""

    name = "llama.cpp"

    def __init__(self, path: Path, threads: int, prompt_tokens: int, gen_tokens: int):
        from llama_cpp import Llama

        self.llm = Llama(model_path=str(path), n_ctx=prompt_tokens + gen_tokens + 8, n_batch=prompt_tokens,
                         n_ubatch=prompt_tokens, n_threads=threads, n_threads_batch=threads, verbose=False)
        self.n_vocab = self.llm.n_vocab()
        import llama_cpp

        self._greedy = None
        if hasattr(llama_cpp, "llama_sampler_init_greedy"):
            smpl = llama_cpp.llama_sampler_init_greedy()
            ctx = self.llm._ctx.ctx
            self._greedy = lambda: int(llama_cpp.llama_sampler_sample(smpl, ctx, -1))

    def last_logits(self) -> np.ndarray:  # logits_all=False keeps the last evaluated token's row only
        return np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(self.n_vocab,))

    def run(self, prompt, gen_tokens: int):
        llm = self.llm
        llm.reset()  # n_tokens = 0: the next eval drops the cached positions
        t0 = time.perf_counter()
        llm.eval(prompt)
        t1 = time.perf_counter()
        first = self.last_logits().copy()
        tok = int(np.argmax(first))
        for _ in range(gen_tokens):
            llm.eval([tok])
            tok = self._greedy() if self._greedy else int(np.argmax(self.last_logits()))
        t2 = time.perf_counter()
        return len(prompt) / (t1 - t0), gen_tokens / (t2 - t1), first


class LowbitEngine:
    """lowbit's LlmSession, driven the same way (greedy decode steps: the runtime's own argmax)."""

    name = "lowbit"

    def __init__(self, pkg: Path, threads: int, prompt_tokens: int, gen_tokens: int, copy_weights: bool = True):
        from lowbit.llm.session import LlmSession

        if not copy_weights:
            self.name = "lowbit-mapped"
        t0 = time.perf_counter()
        self.s = LlmSession(pkg, threads=threads, max_context=prompt_tokens + gen_tokens + 8, copy_weights=copy_weights)
        self.open_s = time.perf_counter() - t0
        self.pages = weight_pages(self.s, pkg)
        self.token_s = []  # every back-to-back decode call's seconds, all rounds

    def run(self, prompt, gen_tokens: int):
        s = self.s
        s.reset()
        t0 = time.perf_counter()
        first = s.prefill(np.asarray(prompt, np.int32))
        t1 = time.perf_counter()
        tok = int(np.argmax(first))
        for _ in range(gen_tokens):
            a = time.perf_counter()
            tok = s.decode_greedy(tok)
            self.token_s.append(time.perf_counter() - a)
        t2 = time.perf_counter()
        return len(prompt) / (t1 - t0), gen_tokens / (t2 - t1), first


def mapping_huge_fraction(path: Path):
    """Fraction of this process's mapping of `path` that is mapped with 2 MB pages
    (FilePmdMapped / Rss in /proc/self/smaps), or None off Linux."""
    try:
        lines = Path("/proc/self/smaps").read_text().splitlines()
    except OSError:
        return None
    rss = pmd = 0
    inside = False
    for line in lines:
        head = line.split(maxsplit=5)
        if len(head) >= 5 and "-" in head[0] and not head[0].endswith(":"):
            inside = len(head) == 6 and head[5] == str(path.resolve())
        elif inside and line.startswith("Rss:"):
            rss += int(line.split()[1])
        elif inside and line.startswith("FilePmdMapped:"):
            pmd += int(line.split()[1])
    return pmd / rss if rss else 0.0


def weight_pages(session, pkg: Path) -> str:
    """How the session's decode weights are paged, in words."""
    if session.info["copied_bytes"]:
        return f"copied into anonymous 2 MB pages ({session.info['copied_bytes'] / 1e6:.0f} MB)"
    f = mapping_huge_fraction(pkg)
    return "package mapping" + ("" if f is None else f", {100 * f:.0f}% in 2 MB pages")


def interleaved(engines, prompt, gen_tokens: int, repeat: int, between=None):
    """Runs the engines in alternating rounds (A B A B ..., the order flipped each round) and
    returns per engine the median prefill and decode tokens/s, the first logits and the prefill
    tokens/s of every round (the first is the first prefill after the engine was opened). between()
    runs after every round (the bandwidth probe)."""
    res = {e.name: ([], [], None) for e in engines}
    for i in range(repeat):
        if between:
            between()
        for e in (engines if i % 2 == 0 else engines[::-1]):
            p, d, first = e.run(prompt, gen_tokens)
            res[e.name][0].append(p)
            res[e.name][1].append(d)
            res[e.name] = (res[e.name][0], res[e.name][1], first)
    return {k: (float(np.median(p)), float(np.median(d)), first, p) for k, (p, d, first) in res.items()}


def paired_roofline(engine, prompt, gen_tokens: int, threads: int) -> dict:
    """Decode with the weight-read probe (one read of exactly the bytes a token streams) right
    before every token: per token, (bytes / decode time) / probe GB/s. Both see the same machine
    moment, so the median of these ratios is decode's fraction of the roofline without the
    median-against-best bias of the round-level figure (on this VM a plain read's median is about
    85% of its best). With `threads` == 1 the calling thread does all the work, so the ratio of its
    CPU times (probe / decode) is also given: spans in which the process had no core left out."""
    s = engine.s
    nb = s.info["weight_bytes"]
    s.reset()
    tok = int(np.argmax(s.prefill(np.asarray(prompt, np.int32))))
    ratios, probes, tps, cpu_ratios = [], [], [], []
    for _ in range(gen_tokens):
        c0 = time.thread_time()
        probe = s.read_bandwidth(1)
        c1 = time.thread_time()
        t0 = time.perf_counter()
        tok = s.decode_greedy(tok)
        dt = time.perf_counter() - t0
        c2 = time.thread_time()
        ratios.append(nb / dt / 1e9 / probe)
        probes.append(probe)
        tps.append(1.0 / dt)
        if c2 > c1:
            cpu_ratios.append((c1 - c0) / (c2 - c1))
    out = {"median_ratio": float(np.median(ratios)), "fastest_ratio": max(tps) * nb / 1e9 / max(probes),
           "median_probe_gbps": float(np.median(probes))}
    if threads == 1 and cpu_ratios:
        out["median_cpu_ratio"] = float(np.median(cpu_ratios))
    return out


def gemv_efficiency(engine, prompt, gen_tokens: int, rounds: int = 3) -> dict:
    """Profiled decodes alternating with the weight-read probe (each profile right after its
    probe, so both see about the same machine): per linear op, the median over rounds of its
    weight-read GB/s inside decode and of that divided by the probe."""
    from lowbit.llm.profile import summarize

    s = engine.s
    per_op = {}
    for _ in range(rounds):
        probe = s.read_bandwidth(3)
        s.reset()
        tok = int(np.argmax(s.prefill(np.asarray(prompt, np.int32))))
        s.profile(True)
        for _ in range(gen_tokens):
            tok = s.decode_greedy(tok)
        rows = summarize(s.profile_events(), "decode", gen_tokens)
        s.profile(False)
        lin = [r for r in rows if r["gbps"]]
        nbytes = sum(r["gbps"] * r["ms_per_token"] * 1e6 for r in lin)  # bytes per token of the linears
        ms = sum(r["ms_per_token"] for r in lin)
        share = ms / (sum(r["ms_per_token"] for r in rows) or 1)
        for r in lin + [{"op": "all linears", "gbps": nbytes / (ms * 1e6), "share": share}]:
            d = per_op.setdefault(r["op"], {"gbps": [], "of_probe": [], "probe": [], "share": []})
            d["gbps"].append(r["gbps"])
            d["of_probe"].append(r["gbps"] / probe)
            d["probe"].append(probe)
            d["share"].append(r["share"])
    return {op: {k: float(np.median(v)) for k, v in d.items()} for op, d in per_op.items()}


def cosine(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, default=22)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3, help="rounds per engine (interleaved)")
    ap.add_argument("--pairs", default="w4a8-g32:Q4_0,w8a8d:Q8_0")
    ap.add_argument("--workdir", default="build/bench-llm")
    ap.add_argument("--no-llama-cpp", action="store_true", help="lowbit only")
    ap.add_argument("--profile", action="store_true",
                    help="after the rounds: profiled lowbit decodes alternating with the weight-read probe; prints "
                         "each linear's GB/s as a fraction of the probe (kernel efficiency apart from the runtime)")
    ap.add_argument("--mapped-too", action="store_true",
                    help="also run lowbit on 4 KB pages: a fresh copy of the package, copy_weights=False")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    import lowbit
    from lowbit.llm.export import export_hf

    work = Path(args.workdir)
    model = make_model(work / f"tinyllama-{args.layers}l", args.layers)
    threads = [int(t) for t in args.threads.split(",")]
    nat = lowbit.native()
    have_llama = False
    if args.no_llama_cpp:
        print("llama.cpp: skipped (--no-llama-cpp): lowbit only, no ratios", file=sys.stderr)
    else:
        try:
            import gguf  # noqa: F401
            import llama_cpp  # noqa: F401

            have_llama = True
        except ImportError as exc:
            print(f"llama.cpp: NOT MEASURED -- {exc.name} is not installed (pip install '.[bench]'); "
                  "lowbit only, no ratios", file=sys.stderr)
    rng = np.random.default_rng(0)
    prompt = [int(t) for t in rng.integers(3, SHAPE["vocab_size"], args.prompt_tokens)]
    rows = []
    print(f"load average before: {os.getloadavg()[0]:.1f} (2-core shared machine: compare ratios, not absolutes)")
    for pair in args.pairs.split(","):
        scheme, qtype = pair.split(":")
        pkg = work / f"tinyllama-{args.layers}l-{scheme}.lbpk"
        if not pkg.exists():
            t0 = time.time()
            export_hf(model, pkg, scheme=scheme)
            print(f"exported {pkg.name} in {time.time() - t0:.0f} s", file=sys.stderr)
        gg = write_gguf(model, work / f"tinyllama-{args.layers}l-{qtype}.gguf", qtype) if have_llama else None
        for t in threads:
            # Read bandwidth (GB/s) probed before every round; the best probe is the roofline (on a
            # shared machine a probe that lands on a busy moment only underestimates it).
            bws, wbws = [], []
            engines = [LowbitEngine(pkg, t, args.prompt_tokens, args.gen_tokens)]
            if args.mapped_too:
                # a fresh copy: its page cache holds small folios, so the mapping has 4 KB pages
                small = pkg.with_name(pkg.stem + "-4k.lbpk")
                shutil.copyfile(pkg, small)
                engines.append(LowbitEngine(small, t, args.prompt_tokens, args.gen_tokens, copy_weights=False))
            if gg is not None:
                engines.append(LlamaCppEngine(gg, t, args.prompt_tokens, args.gen_tokens))

            def probe():
                bws.append(nat.measure_bandwidth(256 << 20, t, 5))
                wbws.append(engines[0].s.read_bandwidth(3))

            loads = []
            res = interleaved(engines, prompt, args.gen_tokens, args.repeat,
                              between=lambda: (probe(), loads.append(os.getloadavg()[0])))
            bw = max(bws + wbws)
            lp, ld, lfirst, lrounds = res["lowbit"]
            nb = engines[0].s.info["weight_bytes"]
            row = {"scheme": scheme, "threads": t, "read_gbps": bw, "probe_generic_gbps": max(bws),
                   "probe_weights_gbps": max(wbws), "load": float(np.median(loads + [os.getloadavg()[0]])),
                   "lowbit_prefill": lp, "lowbit_prefill_rounds": lrounds, "lowbit_decode": ld, "lowbit_bytes_per_token": nb,
                   "lowbit_roofline": nb * ld / (bw * 1e9), "lowbit_open_s": engines[0].open_s,
                   "lowbit_copied_bytes": engines[0].s.info["copied_bytes"], "lowbit_pages": engines[0].pages,
                   # per decode call in the rounds (back to back): a median near the mean says every
                   # token is that slow, a median well above it says a few slow tokens pull it down
                   "lowbit_decode_token_median": 1.0 / float(np.median(engines[0].token_s)),
                   "lowbit_decode_token_p90_ms": 1e3 * float(np.percentile(engines[0].token_s, 90))}
            if args.mapped_too:
                mp, md, _, _ = res["lowbit-mapped"]
                row.update({"mapped_prefill": mp, "mapped_decode": md, "mapped_roofline": nb * md / (bw * 1e9),
                            "mapped_open_s": engines[1].open_s, "copy_decode_ratio": ld / md,
                            "mapped_pages": engines[1].pages})
            if gg is not None:
                p, d, first, prounds = res["llama.cpp"]
                gb = gguf_bytes_per_token(gg)
                row.update({"llama_cpp": qtype, "llama_prefill": p, "llama_prefill_rounds": prounds, "llama_decode": d, "llama_bytes_per_token": gb,
                            "llama_roofline": gb * d / (bw * 1e9), "prefill_ratio": lp / p, "decode_ratio": ld / d,
                            "first_logits_cosine": cosine(lfirst, first)})
            row["paired"] = paired_roofline(engines[0], prompt, args.gen_tokens, t)
            if args.profile:
                row["gemv"] = gemv_efficiency(engines[0], prompt, args.gen_tokens, rounds=args.repeat)
            del engines
            if args.mapped_too:
                small.unlink(missing_ok=True)
            rows.append(row)
            _print_row(row)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"layers": args.layers, "shape": SHAPE, "llama_cpp": have_llama,
                                               "rows": rows}, indent=2))
    return 0


def _print_row(r) -> None:
    s = (f"{r['scheme']:>9} t={r['threads']}  (load {r['load']:.1f})  lowbit prefill {r['lowbit_prefill']:7.1f} tok/s  "
         f"decode "
         f"{r['lowbit_decode']:6.1f} tok/s ({r['lowbit_bytes_per_token'] / 1e6:.0f} MB/token, "
         f"{100 * r['lowbit_roofline']:.0f}% of {r['read_gbps']:.1f} GB/s; probes: generic "
         f"{r['probe_generic_gbps']:.1f}, decode's weights {r['probe_weights_gbps']:.1f})"
         f"\n{'':>9} t={r['threads']}  lowbit weights: {r['lowbit_pages']}, open {r['lowbit_open_s']:.2f} s; "
         f"prefill by round (the first right after open) {', '.join(f'{v:.1f}' for v in r['lowbit_prefill_rounds'])}")
    if "lowbit_decode_token_median" in r:
        s += (f"\n{'':>9} t={r['threads']}  lowbit decode per token, back to back: median "
              f"{r['lowbit_decode_token_median']:.1f} tok/s, slowest decile from {r['lowbit_decode_token_p90_ms']:.2f} ms")
    if "mapped_decode" in r:
        s += (f"\n{'':>9} t={r['threads']}  lowbit-mapped prefill {r['mapped_prefill']:7.1f} tok/s  decode "
              f"{r['mapped_decode']:6.1f} tok/s ({100 * r['mapped_roofline']:.0f}%; {r['mapped_pages']})   lowbit / "
              f"this: decode {r['copy_decode_ratio']:.2f}x, open {r['lowbit_open_s']:.2f} s vs {r['mapped_open_s']:.2f} s")
    if "llama_cpp" in r:
        s += (f"\n{r['llama_cpp']:>9} t={r['threads']}  llama.cpp prefill {r['llama_prefill']:7.1f} tok/s  decode "
              f"{r['llama_decode']:6.1f} tok/s ({r['llama_bytes_per_token'] / 1e6:.0f} MB/token, "
              f"{100 * r['llama_roofline']:.0f}%)   ratio prefill {r['prefill_ratio']:.2f}x decode {r['decode_ratio']:.2f}x"
              f"  (first-token logits cosine {r['first_logits_cosine']:.3f})")
    if "paired" in r:
        pr = r["paired"]
        s += (f"\n{'':>9} t={r['threads']}  decode vs a weight-read probe right before each token: "
              f"{100 * pr['median_ratio']:.0f}% (median of per-token ratios; probe median {pr['median_probe_gbps']:.1f} "
              f"GB/s), fastest token vs best probe {100 * pr['fastest_ratio']:.0f}%")
        if "median_cpu_ratio" in pr:
            s += f"; CPU-time medians (time on a core) {100 * pr['median_cpu_ratio']:.0f}%"
    if "gemv" in r:
        s += "\n" + "  ".join(f"{op} {g['gbps']:.1f} GB/s ({100 * g['of_probe']:.0f}%)" for op, g in r["gemv"].items())
        s += f"  [decode linears in-process vs the weight-read probe; linears {100 * r['gemv']['all linears']['share']:.0f}% of decode]"
    print(s, flush=True)


if __name__ == "__main__":
    sys.exit(main())
