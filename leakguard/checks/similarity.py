"""The three similarity checks, each dispatching to a per-modality backend.

A backend is registered for a (check, modality) pair with :func:`register_backend` in a module
of ``leakguard.similarity`` (``image``, ``text``, ``audio``, ``tabular``); the check applies to
the splits' modality when a backend for it is registered. Backends add their pairs to
``ctx.links`` so group inference and re-splitting reuse them.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from ..report import Finding
from .base import AuditContext, Check, register_check

BACKEND_MODULES = ["image", "text", "audio", "tabular"]


@dataclass(frozen=True)
class Backend:
    run: Callable[[AuditContext, Check], list[Finding]]
    needs: frozenset


BACKENDS: dict[tuple[str, str], Backend] = {}


def register_backend(check: str, modality: str, needs=()):
    """Decorator: ``fn(ctx, check) -> list[Finding]`` runs ``check`` on ``modality`` splits.

    ``needs``: the signature kinds it reads, computed for every split before checks run.
    """
    def deco(fn):
        BACKENDS[(check, modality)] = Backend(fn, frozenset(needs))
        return fn
    return deco


def load_backends() -> None:
    for mod in BACKEND_MODULES:
        name = f"leakguard.similarity.{mod}"
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise


class SimilarityCheck(Check):
    order = 20

    def _backend(self, modality: str) -> Backend | None:
        load_backends()
        return BACKENDS.get((self.name, modality))

    def applies(self, splits) -> bool:
        return self._backend(splits.modality) is not None

    def needs(self, splits) -> set[str]:
        b = self._backend(splits.modality)
        return set(b.needs) if b else set()

    def run(self, ctx: AuditContext) -> list[Finding]:
        return self._backend(ctx.splits.modality).run(ctx, self)


@register_check
class AugmentedDuplicate(SimilarityCheck):
    name = "augmented_duplicate"
    order = 20
    description = "evaluation samples that are augmented copies of training samples"


@register_check
class SemanticDuplicate(SimilarityCheck):
    name = "semantic_duplicate"
    order = 30
    description = "near-identical meaning that no augmentation explains (embeddings, nearest neighbours)"


@register_check
class PartialDuplicate(SimilarityCheck):
    name = "partial_duplicate"
    order = 25
    description = "part of a sample reused: overlapping crops, a shared audio segment or text passage"
