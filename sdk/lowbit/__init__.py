"""lowbit: quantize PyTorch/ONNX models and run them on small devices.

``import lowbit`` needs only numpy: torch, onnx and tvm are imported where they are used.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "native", "LowbitError"]


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
