"""PEP 562 lazy attributes: a package lists its public names as "module:attribute" and imports
each on first use, so that ``import lowbit`` stays light (numpy only)."""
from __future__ import annotations

import importlib
from typing import Any, Callable, Dict


def lazy_getattr(package: str, table: Dict[str, str], namespace: Dict[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that resolves ``table[name]`` once and caches it in ``namespace``."""

    def __getattr__(name: str) -> Any:
        target = table.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        mod_name, attr = target.split(":")
        value = getattr(importlib.import_module(mod_name), attr)
        namespace[name] = value
        return value

    return __getattr__
