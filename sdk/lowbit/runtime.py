"""Run device packages from Python: ``lowbit.load(path) -> Session``.

A thin layer over the native runtime (``lowbit._native.GraphModel/GraphSession``, which wrap the
C API in lowbit.h): the same loader, planner and kernels that an app embedding liblowbit uses.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np

from lowbit import LowbitError, native


class RuntimeStatusError(LowbitError):
    """A failed runtime call; ``status`` is the lb_status name (e.g. ``"LB_ERR_CHECKSUM"``)."""

    def __init__(self, status: str, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.detail = message


def _wrap(exc: RuntimeError) -> RuntimeStatusError:
    text = str(exc)
    status, _, msg = text.partition(": ")
    if not status.startswith("LB_"):
        status, msg = "LB_ERR_INTERNAL", text
    return RuntimeStatusError(status, msg)


class Session:
    """A loaded package with one native session (its own threads and arena).

    ``inputs``/``outputs``: lists of ``{"name", "dtype", "shape"}`` (``None`` for a dynamic dim);
    ``manifest``: the package manifest (dict); ``run({name: array}) -> {name: array}``.
    """

    def __init__(self, path: Union[str, Path, bytes], threads: Optional[int] = None, lazy: bool = False):
        nat = native()
        try:
            if isinstance(path, (bytes, bytearray)):
                self._model = nat.GraphModel(bytes(path), lazy)
                self.path = None
            else:
                self.path = Path(path)
                self._model = nat.GraphModel(str(self.path), lazy)
            self._session = nat.GraphSession(self._model, int(threads or 0))
        except RuntimeError as exc:
            raise _wrap(exc) from None
        self.manifest: Dict[str, Any] = json.loads(self._model.manifest_json)
        self.inputs: List[Dict[str, Any]] = self._model.inputs
        self.outputs: List[Dict[str, Any]] = self._model.outputs
        self.threads = threads

    def run(self, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        try:
            return self._session.run({k: np.ascontiguousarray(v) for k, v in feeds.items()})
        except RuntimeError as exc:
            raise _wrap(exc) from None

    @property
    def arena_bytes(self) -> int:
        """Bytes of the session's arena (intermediate values + scratch) for the last plan."""
        return int(self._session.arena_bytes)

    def enable_profiling(self, on: bool = True) -> None:
        self._session.enable_profiling(bool(on))

    def profile_events(self) -> List[Dict[str, Any]]:
        """Per-op events of the last run (op, kernel, ISA, shapes, start/end ns, bytes, ops)."""
        return self._session.profile_events()

    def verify(self) -> None:
        """Hashes every section not checked yet (lazy loads)."""
        try:
            self._model.verify()
        except RuntimeError as exc:
            raise _wrap(exc) from None

    def golden(self) -> Optional[Dict[str, Any]]:
        """The golden vectors stored in the package: inputs, expected outputs, rtol, atol."""
        g = self.manifest.get("golden")
        if not g or self.path is None:
            return None
        from lowbit.exporters.lbpk_container import PackageReader  # noqa: PLC0415

        r = PackageReader(self.path, verify=False)
        return {"inputs": {k: np.array(r.tensor(t)) for k, t in g["inputs"].items()},
                "outputs": {k: np.array(r.tensor(t)) for k, t in g["outputs"].items()},
                "rtol": g.get("rtol", 1e-4), "atol": g.get("atol", 1e-5)}


def load(path: Union[str, Path, bytes], threads: Optional[int] = None, lazy: bool = False) -> Session:
    """Opens a .lbpk (verifying every section's SHA-256, or lazily with ``lazy=True``) and creates
    a session with ``threads`` threads (default: all cores / LOWBIT_NUM_THREADS).
    LLM packages (manifest kind "llm") give a :class:`lowbit.llm.LlmSession` instead."""
    if isinstance(path, (str, Path)):
        from lowbit.llm.session import LlmSession, is_llm_package  # noqa: PLC0415

        if is_llm_package(path):
            return LlmSession(path, threads=threads or 0, verify=not lazy)
    return Session(path, threads=threads, lazy=lazy)


def check_golden(sess: Session) -> Dict[str, Any]:
    """Runs the package's golden inputs and compares with its expected outputs.
    Returns ``{"ok": bool, "outputs": {name: {"max_abs", "max_rel", "ok"}}, "rtol", "atol"}``."""
    g = sess.golden()
    if g is None:
        raise LowbitError("the package has no golden vectors (export with golden inputs to add them)")
    got = sess.run(g["inputs"])
    res: Dict[str, Any] = {"ok": True, "outputs": {}, "rtol": g["rtol"], "atol": g["atol"]}
    for name, exp in g["outputs"].items():
        a = got[name].astype(np.float64)
        e = exp.astype(np.float64)
        ok = a.shape == e.shape and bool(np.allclose(a, e, rtol=g["rtol"], atol=g["atol"]))
        diff = np.abs(a - e) if a.shape == e.shape else np.array([np.inf])
        rel = float(np.max(diff / np.maximum(np.abs(e), 1e-12))) if a.shape == e.shape else float("inf")
        res["outputs"][name] = {"max_abs": float(np.max(diff)) if diff.size else 0.0, "max_rel": rel, "ok": ok}
        res["ok"] &= ok
    return res
