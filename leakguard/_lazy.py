"""Lazy public names for a package: attributes import their module on first use."""
from __future__ import annotations

import importlib


def lazy_getattr(package: str, table: dict[str, tuple[str, str]], namespace: dict):
    """A module ``__getattr__`` that imports ``table[name] = (module, attribute)`` on first use
    and keeps the value in ``namespace`` (the package's globals) so later look-ups are plain."""
    def __getattr__(name: str):
        if name in table:
            module, attr = table[name]
            value = getattr(importlib.import_module(module), attr)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return __getattr__
