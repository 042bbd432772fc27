"""Helpers of the LLM tests: tiny Llama-family models made with transformers (random weights,
save_pretrained) and transformers' own logits / greedy continuations to compare against."""
from __future__ import annotations

TINY = dict(hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=256, max_position_embeddings=256,
            bos_token_id=1, eos_token_id=2)


def make_hf_model(out_dir, arch="llama", seed=0, **overrides):
    """Writes a random-weight HF model to out_dir and returns the torch model (eval mode)."""
    import torch
    import transformers

    torch.manual_seed(seed)
    cfg_cls, model_cls = {
        "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
        "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
        "mistral": (transformers.MistralConfig, transformers.MistralForCausalLM),
    }[arch]
    kw = dict(TINY)
    kw.update(overrides)
    cfg = cfg_cls(**kw)
    model = model_cls(cfg).eval()
    # Larger-than-default weights make logits spread out, so greedy decoding is a real test.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 2:
                p.normal_(0.0, 0.08)
            elif "norm" in name:
                p.uniform_(0.8, 1.2)
            else:
                p.normal_(0.0, 0.05)
    model.save_pretrained(str(out_dir))
    return model



def torch_greedy(model, prompt, n):
    """Greedy continuation computed by transformers itself (full recompute each step, no EOS
    handling, so every one of the n tokens is compared)."""
    import torch

    seq = [int(t) for t in prompt]
    with torch.no_grad():
        for _ in range(n):
            seq.append(int(model(torch.tensor(seq)[None]).logits[0, -1].argmax()))
    return seq[len(prompt):]


def torch_logits(model, ids):
    import torch

    with torch.no_grad():
        return model(torch.tensor([int(t) for t in ids])[None]).logits[0].numpy()

