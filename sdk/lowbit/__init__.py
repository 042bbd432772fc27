"""lowbit: quantize PyTorch/ONNX models and run them on small devices.

``import lowbit`` needs only numpy: torch, onnx and tvm are imported where they are used, and the
public functions below are loaded on first use.
"""
from __future__ import annotations

from lowbit._lazy import lazy_getattr

__version__ = "0.1.0"


class LowbitError(RuntimeError):
    """Any error lowbit reports to a user: the message says what is wrong and how to fix it."""


def native():
    """The compiled extension ``lowbit._native``, with a clear error if it is missing."""
    try:
        from lowbit import _native  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise LowbitError(
            "lowbit's native extension is not built. Install the package with "
            "`pip install .` (or run `make dev`) from the repository root."
        ) from exc
    return _native


# Public API name -> "module:attribute", imported lazily (PEP 562).
_LAZY = {
    "export": "lowbit.export_api:export",
    "load": "lowbit.runtime:load",
    "Session": "lowbit.runtime:Session",
    "profile": "lowbit.profiler:profile",
    "Report": "lowbit.profiler:Report",
}

__all__ = ["__version__", "native", "LowbitError", *_LAZY]


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
