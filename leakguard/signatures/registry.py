"""Registry of per-sample signature kinds: (modality, kind) -> function of the canonical item."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class SignatureSpec:
    """How to compute one kind of signature for one modality.

    ``fn(item) -> np.ndarray | bytes`` takes the canonical item. Bump ``version`` when the output
    changes, so cached values of the old version are not reused.
    """

    modality: str
    kind: str
    fn: Callable
    version: str = "1"


SIGNATURES: dict[tuple[str, str], SignatureSpec] = {}


def register_signature(modality: str, kind: str, version: str = "1"):
    """Decorator: register ``fn`` as the ``kind`` signature of ``modality`` items."""
    def deco(fn):
        SIGNATURES[(modality, kind)] = SignatureSpec(modality, kind, fn, version)
        return fn
    return deco


def get_signature(modality: str, kind: str) -> SignatureSpec:
    try:
        return SIGNATURES[(modality, kind)]
    except KeyError:
        known = sorted(k for m, k in SIGNATURES if m == modality)
        raise KeyError(f"no {kind!r} signature for {modality} data; known: {known}") from None
