"""CLI (`lowbit generate`, `lowbit bench-llm`, `lowbit export DIR`) and the chat sample."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lowbit.cli import main
from lowbit.llm.session import LlmSession

ROOT = Path(__file__).resolve().parents[2]


def test_llm_cli_generate_matches_api(tiny_fp32_pkg, capsys):
    want = LlmSession(tiny_fp32_pkg).generate([5, 6, 7], 10, stop=[])
    assert main(["generate", str(tiny_fp32_pkg), "--prompt-ids", "5,6,7", "--max-new-tokens", "10", "--stop", ""]) == 0
    assert capsys.readouterr().out.strip() == ",".join(map(str, want))
    assert main(["generate", str(tiny_fp32_pkg), "--prompt-ids", "5,6,7", "--max-new-tokens", "6", "--stop", "",
                 "--temperature", "0.8", "--top-k", "5", "--seed", "3", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["output_ids"] == LlmSession(tiny_fp32_pkg).generate([5, 6, 7], 6, temperature=0.8, top_k=5, seed=3,
                                                                   stop=[])
    assert main(["generate", str(tiny_fp32_pkg), "--prompt-ids", "5,x"]) == 1
    assert "comma-separated integers" in capsys.readouterr().err
    assert main(["generate", str(tiny_fp32_pkg), "--prompt-ids", "1,999"]) == 1
    assert "out of range" in capsys.readouterr().err


def test_llm_cli_bench_writes_json(tiny_fp32_pkg, tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["bench-llm", str(tiny_fp32_pkg), "--prompt-tokens", "16", "--gen-tokens", "4", "--threads", "1",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "prefill" in text and "decode" in text
    rec = json.loads(out.read_text())
    assert rec["prompt_tokens"] == 16 and rec["gen_tokens"] == 4
    assert rec["prefill_tok_s"] > 0 and rec["decode_tok_s"] > 0


def test_llm_export_entry_points(tiny_llama, tmp_path, capsys):
    d, _ = tiny_llama
    out = tmp_path / "cli.lbpk"
    assert main(["export", str(d), "-o", str(out), "--scheme", "w8a8d"]) == 0, capsys.readouterr().err
    assert LlmSession(out).manifest["scheme"] == "w8a8d"
    import lowbit

    p = lowbit.export(d, tmp_path / "api.lbpk", scheme="w4a8-g32")
    assert LlmSession(p).manifest["scheme"] == "w4a8-g32"
    s = lowbit.load(p)
    assert isinstance(s, LlmSession) and len(s.generate([1, 2, 3], 5, stop=[])) == 5


def test_llm_chat_sample(tmp_path, tiny_fp32_pkg):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {f"w{i}": i for i in range(256)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    r = subprocess.run([sys.executable, str(ROOT / "samples" / "chat" / "chat.py"), str(tiny_fp32_pkg),
                        "--tokenizer", str(tmp_path / "tokenizer.json"), "--prompt", "w5 w6 w7",
                        "--prompt", "w9", "--max-new-tokens", "5"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stdout.splitlines() if l.startswith("assistant> ")]
    assert len(lines) == 2 and all(len(l.split()) >= 2 for l in lines)
