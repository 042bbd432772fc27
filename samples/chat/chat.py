"""A tiny chat program over an LLM package: text -> token ids with the `tokenizers` package,
lowbit generates token ids (streamed), text back out.

    python samples/chat/chat.py MODEL.lbpk [--tokenizer tokenizer.json] [--prompt "Hello"]

The tokenizer comes from --tokenizer, or from the package itself (lowbit export stores the model
directory's tokenizer.json in the package when there is one). Without --prompt it reads lines
from stdin until EOF; each line is one user turn, and the conversation so far is the context.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def load_tokenizer(package: Path, tokenizer_path=None):
    from tokenizers import Tokenizer

    if tokenizer_path:
        return Tokenizer.from_file(str(tokenizer_path))
    from lowbit.exporters.lbpk_container import PackageReader

    r = PackageReader(package)
    try:
        if "tokenizer.json" not in r.sections:
            raise SystemExit(f"{package} has no tokenizer.json section: pass --tokenizer")
        return Tokenizer.from_str(bytes(r.section_bytes("tokenizer.json")).decode())
    finally:
        r.close()


def chat(package, prompts, tokenizer_path=None, max_new_tokens=64, temperature=0.7, top_p=0.9, seed=0,
         out=sys.stdout):
    from lowbit.llm import LlmSession

    tok = load_tokenizer(Path(package), tokenizer_path)
    sess = LlmSession(package)
    history = []
    bos = sess.info["bos_token_id"]
    replies = []
    for turn, text in enumerate(prompts):
        history += tok.encode(f"User: {text}\nAssistant:", add_special_tokens=False).ids
        ids = ([bos] if bos >= 0 else []) + history
        ids = ids[-(sess.context_length - max_new_tokens):]  # keep the most recent context
        out.write("assistant> ")
        reply = []

        def stream(t):
            reply.append(t)
            out.write(tok.decode([t]))
            out.flush()

        sess.generate(ids, max_new_tokens, temperature=temperature, top_p=top_p, seed=seed + turn, callback=stream)
        out.write("\n")
        history += reply
        replies.append(tok.decode(reply))
    return replies


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="chat with an LLM package (token ids via `tokenizers`)")
    ap.add_argument("package")
    ap.add_argument("--tokenizer", default=None, help="tokenizer.json (default: the one inside the package)")
    ap.add_argument("--prompt", action="append", help="a user turn (repeatable); default: read stdin lines")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--top-p", type=float, default=0.9)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    prompts = a.prompt or (line.rstrip("\n") for line in sys.stdin if line.strip())
    chat(a.package, prompts, a.tokenizer, a.max_new_tokens, a.temperature, a.top_p, a.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
