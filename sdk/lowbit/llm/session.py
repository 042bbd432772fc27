"""``LlmSession``: the Python face of the native decoder runtime (``lb_llm_*``).

``lowbit.load(pkg)`` returns one for packages whose manifest kind is ``"llm"``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np

import lowbit
from lowbit import LowbitError

KV_TYPES = {"f16": 0, "fp16": 0, "int8": 1, "i8": 1, "f32": 2, "fp32": 2, "bfp": 3, "bfp-noreorder": 4}


def is_llm_package(path) -> bool:
    """True if ``path`` is an .lbpk whose manifest kind is "llm" (False for anything else)."""
    try:
        from lowbit.exporters.lbpk_container import PackageReader

        r = PackageReader(path, verify=False)
        try:
            return r.manifest.get("kind") == "llm"
        finally:
            r.close()
    except Exception:
        return False


def _ids(tokens, what: str) -> np.ndarray:
    arr = np.asarray(tokens)
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1:
        raise LowbitError(f"{what}: expected a 1-D sequence of token ids, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise LowbitError(f"{what}: token ids must be integers, got dtype {arr.dtype}")
    if arr.size and (arr.min() < np.iinfo(np.int32).min or arr.max() > np.iinfo(np.int32).max):
        raise LowbitError(f"{what}: token id out of the int32 range")
    return arr.astype(np.int32)


class LlmSession:
    """One decoding sequence of an LLM package.

    threads: worker threads (default: lowbit's default). kv_cache: "f16" (default), "int8", "f32",
    "bfp" (block floating point, channels reordered by magnitude; docs/llm.md) or "bfp-noreorder".
    max_context: KV cache capacity (default: the model's context length). h2o_budget:
    keep at most this many cached tokens per layer (heavy-hitter eviction), 0 = off.
    copy_weights: copy the linears' weights at open into anonymous huge-page memory (default;
    Linux): faster decode (fewer TLB misses), same results, a slower open; False reads them from
    the package's file mapping. info["copied_bytes"] says how many bytes were copied.
    """

    def __init__(self, path: Union[str, Path], *, threads: int = 0, kv_cache: str = "f16", max_context: int = 0,
                 prefill_chunk: int = 0, h2o_budget: int = 0, h2o_recent: int = 0, verify: bool = True,
                 copy_weights: bool = True):
        if kv_cache not in KV_TYPES:
            raise LowbitError(f"kv_cache must be one of f16, int8, f32, bfp, bfp-noreorder (got {kv_cache!r})")
        self.path = Path(path)
        try:
            self._rt = lowbit.native().LlmRuntime(str(self.path), threads=int(threads), kv_type=KV_TYPES[kv_cache],
                                                  max_context=int(max_context), prefill_chunk=int(prefill_chunk),
                                                  h2o_budget=int(h2o_budget), h2o_recent=int(h2o_recent),
                                                  verify=bool(verify), copy_weights=bool(copy_weights))
        except RuntimeError as exc:
            raise LowbitError(f"cannot open LLM package {self.path}: {exc}") from None
        self.info: Dict = self._rt.info()
        self.manifest: Dict = json.loads(self._rt.manifest())

    # -- facts -------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.info["vocab_size"]

    @property
    def context_length(self) -> int:
        return self.info["context_length"]

    @property
    def eos_token_ids(self) -> List[int]:
        return list(self.info["eos_token_ids"])

    @property
    def position(self) -> int:
        return self._rt.position

    def _call(self, fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except RuntimeError as exc:
            raise LowbitError(str(exc)) from None

    # -- low level ---------------------------------------------------------------------
    def reset(self) -> None:
        self._rt.reset()

    def prefill(self, input_ids) -> np.ndarray:
        """Appends tokens to the sequence; returns the logits [vocab] of the last one."""
        return self._call(self._rt.prefill, _ids(input_ids, "prefill"))

    def logits(self, input_ids) -> np.ndarray:
        """Appends tokens; returns the logits [n, vocab] of every one (tests, perplexity)."""
        return self._call(self._rt.eval_all, _ids(input_ids, "logits"))

    def decode(self, token: int) -> np.ndarray:
        """Appends one token; returns the logits [vocab] of the next position."""
        return self._call(self._rt.decode, int(token))

    def decode_greedy(self, token: int) -> int:
        """Appends one token; returns the next one by greedy sampling (the argmax, ties to the lowest id:
        ``int(np.argmax(decode(token)))``), done natively with no logits array for Python."""
        return self._call(self._rt.decode_greedy, int(token))

    def stats(self) -> Dict[str, float]:
        return self._rt.stats()

    def read_bandwidth(self, repeats: int = 5) -> float:
        """Decode's roofline for this session, GB/s: the best of `repeats` timed reads of exactly
        the weight bytes one decoded token streams (same pages, same order, the session's threads)."""
        return float(self._call(self._rt.measure_read, int(repeats)))

    # -- profiling ---------------------------------------------------------------------
    def profile(self, enable: bool = True) -> None:
        """Turns per-op profiling on or off; either way the counters are cleared."""
        self._rt.profile_enable(bool(enable))

    def profile_events(self) -> List[Dict]:
        """Per-op totals since profiling was turned on: one dict per (phase, layer, op) with
        ``phase`` ("prefill"/"decode"), ``layer`` (-1 outside the blocks), ``op``, ``kernel``,
        ``isa``, ``calls``, ``ns`` and ``weight_bytes`` (read by one call; 0 for non-linears)."""
        return self._rt.profile()

    # -- generation --------------------------------------------------------------------
    def generate(self, input_ids, max_new_tokens: int = 32, *, temperature: float = 0.0, top_k: int = 0,
                 top_p: float = 1.0, repetition_penalty: float = 1.0, seed: int = 0,
                 stop: Optional[Iterable[int]] = None, callback: Optional[Callable[[int], Optional[bool]]] = None
                 ) -> List[int]:
        """Generates up to ``max_new_tokens`` after ``input_ids`` (the session is reset first).

        temperature 0 is greedy. ``stop``: token ids that end generation (the stop token is
        included in the result); default: the model's EOS ids (pass ``[]`` for none).
        ``callback(token)`` is called for each token as it is produced; returning False stops.
        Returns the new token ids.
        """
        prompt = _ids(input_ids, "generate")
        if isinstance(max_new_tokens, bool) or int(max_new_tokens) != max_new_tokens or max_new_tokens < 0:
            raise LowbitError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
        stops = self.eos_token_ids if stop is None else [int(s) for s in stop]
        try:
            seed = int(seed) & 0xFFFFFFFFFFFFFFFF
        except (TypeError, ValueError):
            raise LowbitError(f"seed must be an integer, got {seed!r}") from None
        return self._call(self._rt.generate, prompt, int(max_new_tokens), float(temperature), int(top_k),
                          float(top_p), float(repetition_penalty), seed, stops, callback)

    def stream(self, input_ids, max_new_tokens: int = 32, **kw):
        """Generator form of :meth:`generate`: yields token ids as they are produced."""
        # The native loop runs with the GIL released and calls back per token; collecting in a
        # list keeps it simple and the per-token cost is microseconds.
        import queue
        import threading

        q: "queue.Queue" = queue.Queue()
        done = object()
        err: List[BaseException] = []

        def run():
            try:
                self.generate(input_ids, max_new_tokens, callback=q.put, **kw)
            except BaseException as exc:  # re-raised in the consumer
                err.append(exc)
            finally:
                q.put(done)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        while True:
            item = q.get()
            if item is done:
                break
            yield item
        t.join()
        if err:
            raise err[0]

    def run(self, feeds):  # the graph Session API, for a clear error
        raise LowbitError("this is an LLM package: use .generate(input_ids, max_new_tokens=...) "
                          "(or .prefill/.decode/.logits), not .run()")
