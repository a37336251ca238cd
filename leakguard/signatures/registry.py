"""Registry of per-sample signature kinds: (modality, kind) -> function of the canonical item."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class SignatureSpec:
    """How to compute one kind of signature for one modality.

    ``fn(item) -> np.ndarray | bytes`` takes the canonical item. Bump ``version`` when the output
    changes, so cached values of the old version are not reused.

    Batched kinds also give ``prepare(item) -> small`` (run per sample, on the reading threads;
    kinds that share one ``prepare`` function share its result) and ``batch(list of small) ->
    list of values`` (vectorised over many samples); ``fn`` is then ``batch([prepare(item)])[0]``,
    so both ways give the same values.
    """

    modality: str
    kind: str
    fn: Callable
    version: str = "1"
    prepare: Callable | None = None
    batch: Callable | None = None


SIGNATURES: dict[tuple[str, str], SignatureSpec] = {}


def register_signature(modality: str, kind: str, version: str = "1"):
    """Decorator: register ``fn`` as the ``kind`` signature of ``modality`` items."""
    def deco(fn):
        SIGNATURES[(modality, kind)] = SignatureSpec(modality, kind, fn, version)
        return fn
    return deco


def register_batched_signature(modality: str, kind: str, prepare: Callable, version: str = "1"):
    """Decorator: register ``batch(list of prepare(item)) -> list`` as the ``kind`` signature.

    >>> @register_batched_signature("series", "length_demo", prepare=len)
    ... def lengths(prepared):
    ...     return [n * 1.0 for n in prepared]
    >>> get_signature("series", "length_demo").fn([1, 2, 3])
    3.0
    >>> del SIGNATURES[("series", "length_demo")]
    """
    def deco(batch):
        def fn(item):
            return batch([prepare(item)])[0]
        SIGNATURES[(modality, kind)] = SignatureSpec(modality, kind, fn, version, prepare, batch)
        return batch
    return deco


def get_signature(modality: str, kind: str) -> SignatureSpec:
    try:
        return SIGNATURES[(modality, kind)]
    except KeyError:
        known = sorted(k for m, k in SIGNATURES if m == modality)
        raise KeyError(f"no {kind!r} signature for {modality} data; known: {known}") from None
