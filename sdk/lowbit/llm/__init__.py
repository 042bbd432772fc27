"""lowbit's decoder-LLM support (Llama, Qwen2, Mistral families): Hugging Face export to an
``.lbpk`` LLM package, a numpy reference decoder, and :class:`LlmSession` over the native runtime.

Token ids in, token ids out; text handling lives in the application (see ``samples/chat``).
"""
from __future__ import annotations

import importlib

_LAZY = {
    "LlmConfig": "lowbit.llm.config:LlmConfig",
    "LlmConfigError": "lowbit.llm.config:LlmConfigError",
    "export_hf": "lowbit.llm.export:export_hf",
    "LlmSession": "lowbit.llm.session:LlmSession",
    "ReferenceDecoder": "lowbit.llm.reference:ReferenceDecoder",
    "is_llm_dir": "lowbit.llm.config:is_llm_dir",
    "is_llm_package": "lowbit.llm.session:is_llm_package",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'lowbit.llm' has no attribute {name!r}")
    mod_name, attr = target.split(":")
    value = getattr(importlib.import_module(mod_name), attr)
    globals()[name] = value
    return value
