"""One module per kind of leakage, registered by name (see ``base.register_check``)."""
from __future__ import annotations

import importlib

from .base import CHECKS, AuditContext, Check, available_checks, get_check, register_check

# modules that register checks; a missing optional module (not written yet, or an optional
# dependency absent) only removes its checks
CHECK_MODULES = [
    "exact", "similarity", "groups", "temporal", "target", "preprocessing", "oversampling",
]


def load_all() -> None:
    for mod in CHECK_MODULES:
        try:
            importlib.import_module(f"{__name__}.{mod}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{mod}":
                raise


__all__ = ["CHECKS", "AuditContext", "Check", "available_checks", "get_check", "register_check", "load_all"]
