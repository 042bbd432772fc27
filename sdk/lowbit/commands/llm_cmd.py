"""`lowbit generate` and `lowbit bench-llm`: token ids in, token ids out, for LLM packages."""
from __future__ import annotations

import json
import sys
import time

from lowbit import LowbitError


def _parse_ids(text: str):
    try:
        return [int(t) for t in text.replace(" ", "").split(",") if t != ""]
    except ValueError:
        raise LowbitError(f"--prompt-ids must be comma-separated integers, got {text!r}") from None


def _session(args):
    from lowbit.llm.session import LlmSession

    return LlmSession(args.package, threads=args.threads, kv_cache=args.kv_cache, max_context=args.max_context,
                      h2o_budget=getattr(args, "h2o_budget", 0))


def _generate(args) -> int:
    ids = _parse_ids(args.prompt_ids)
    if not ids:
        raise LowbitError("--prompt-ids needs at least one token id")
    s = _session(args)
    stop = None if args.stop is None else _parse_ids(args.stop)
    out = []

    def on_token(tok):
        out.append(tok)
        if args.stream:
            print(tok, end=",", flush=True)

    s.generate(ids, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
               repetition_penalty=args.repetition_penalty, seed=args.seed, stop=stop, callback=on_token)
    if args.stream:
        print()
    if args.json:
        st = s.stats()
        print(json.dumps({"prompt_ids": ids, "output_ids": out, **st}))
    elif not args.stream:
        print(",".join(str(t) for t in out))
    return 0


def bench(package, *, prompt_tokens=128, gen_tokens=64, threads=1, kv_cache="f16", repeat=1, seed=0,
          profile=False) -> dict:
    """Prefill `prompt_tokens` random ids, then decode `gen_tokens` greedily; medians over `repeat`.

    profile: also run one more (untimed) pass with per-op profiling on and return its breakdown
    under "profile" ({"prefill": rows, "decode": rows}, see lowbit.llm.profile.summarize)."""
    import numpy as np

    from lowbit.llm.session import LlmSession

    s = LlmSession(package, threads=threads, kv_cache=kv_cache, max_context=prompt_tokens + gen_tokens)
    rng = np.random.default_rng(seed)
    prompt = rng.integers(0, s.vocab_size, prompt_tokens).astype(np.int32)
    pre, dec = [], []
    for _ in range(max(1, repeat)):
        s.reset()
        t0 = time.perf_counter()
        logits = s.prefill(prompt)
        t1 = time.perf_counter()
        tok = int(np.argmax(logits))
        for _ in range(gen_tokens):
            tok = int(np.argmax(s.decode(tok)))
        t2 = time.perf_counter()
        pre.append(prompt_tokens / (t1 - t0))
        dec.append(gen_tokens / (t2 - t1) if gen_tokens else 0.0)
    res = {
        "package": str(package), "scheme": s.manifest.get("scheme"), "threads": threads,
        "prompt_tokens": prompt_tokens, "gen_tokens": gen_tokens, "kv_cache": kv_cache,
        "prefill_tok_s": float(np.median(pre)), "decode_tok_s": float(np.median(dec)),
        "weight_bytes_per_token": s.info["weight_bytes"],
    }
    if profile:
        from lowbit.llm.profile import summarize

        s.reset()
        s.profile(True)
        logits = s.prefill(prompt)
        tok = int(np.argmax(logits))
        for _ in range(gen_tokens):
            tok = int(np.argmax(s.decode(tok)))
        ev = s.profile_events()
        s.profile(False)
        res["profile"] = {"prefill": summarize(ev, "prefill", prompt_tokens)}
        if gen_tokens:
            res["profile"]["decode"] = summarize(ev, "decode", gen_tokens)
    return res


def _bench(args) -> int:
    res = bench(args.package, prompt_tokens=args.prompt_tokens, gen_tokens=args.gen_tokens, threads=args.threads,
                kv_cache=args.kv_cache, repeat=args.repeat, profile=args.profile)
    print(f"{res['package']}  scheme {res['scheme']}  threads {res['threads']}")
    print(f"  prefill {res['prompt_tokens']:5d} tokens: {res['prefill_tok_s']:9.1f} tokens/s")
    print(f"  decode  {res['gen_tokens']:5d} tokens: {res['decode_tok_s']:9.1f} tokens/s"
          f"  ({res['weight_bytes_per_token'] / 1e6:.1f} MB of weights per token)")
    if args.profile:
        from lowbit.llm.profile import format_table

        for phase, rows in res["profile"].items():
            n = res["prompt_tokens"] if phase == "prefill" else res["gen_tokens"]
            print(format_table(rows, f"{phase} per-op profile (per token, summed over layers, {n} tokens):"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


def _common(p, threads_default=0):
    p.add_argument("package", help="an LLM .lbpk (from `lowbit export MODEL_DIR`)")
    p.add_argument("--threads", type=int, default=threads_default, help="threads (0 = default)")
    p.add_argument("--kv-cache", default="f16", choices=["f16", "int8", "f32", "bfp", "bfp-noreorder"],
                   help="KV cache type")
    p.add_argument("--max-context", type=int, default=0, help="KV cache capacity in tokens (0 = model's)")


def register(sub) -> None:
    p = sub.add_parser("generate", help="generate token ids with an LLM package")
    _common(p)
    p.add_argument("--prompt-ids", required=True, help="comma-separated prompt token ids, e.g. 1,2,3")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--repetition-penalty", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stop", default=None, help="comma-separated stop ids (default: the model's EOS; '' for none)")
    p.add_argument("--h2o-budget", type=int, default=0, help="heavy-hitter KV eviction budget (0 = off)")
    p.add_argument("--stream", action="store_true", help="print each token as it is generated")
    p.add_argument("--json", action="store_true", help="print a JSON object with ids and timings")
    p.set_defaults(func=_generate)

    b = sub.add_parser("bench-llm", help="prefill and decode tokens/s of an LLM package")
    _common(b, threads_default=1)
    b.add_argument("--prompt-tokens", type=int, default=128)
    b.add_argument("--gen-tokens", type=int, default=64)
    b.add_argument("--repeat", type=int, default=1)
    b.add_argument("--profile", action="store_true",
                   help="one more pass with per-op profiling: time per op (summed over layers), kernel and ISA")
    b.add_argument("--json", default=None, metavar="OUT", help="also write the results to this JSON file")
    b.set_defaults(func=_bench)
