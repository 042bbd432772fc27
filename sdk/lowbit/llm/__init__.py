"""lowbit's decoder-LLM support (Llama, Qwen2, Mistral families): Hugging Face export to an
``.lbpk`` LLM package, a numpy reference decoder, and :class:`LlmSession` over the native runtime.

Token ids in, token ids out; text handling lives in the application (see ``samples/chat``).
"""
from __future__ import annotations

from lowbit._lazy import lazy_getattr

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


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
