"""The Check interface and the registry of checks by name."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..config import AuditConfig
from ..report import Finding
from ..signatures import SignatureStore
from ..splits import Splits


@dataclass
class AuditContext:
    """What a check sees: the splits, the config, the shared signatures, and links found so far.

    ``links`` collects the pairs every similarity check found (``check`` column says which), so
    later checks (group inference, re-split) reuse them instead of searching again.
    """

    splits: Splits
    config: AuditConfig
    signatures: SignatureStore
    links: list[pd.DataFrame] = field(default_factory=list)
    shared: dict = field(default_factory=dict)  # intermediate results checks share (calibrations...)

    @property
    def train(self) -> str:
        return self.splits.train

    def severity(self, check: str, default: str) -> str:
        return self.config.severity.get(check, default)

    def all_links(self) -> pd.DataFrame:
        from ..report import empty_pairs

        frames = [f for f in self.links if len(f)]
        return pd.concat(frames, ignore_index=True) if frames else empty_pairs()

    def valid(self, split: str) -> np.ndarray:
        return self.signatures.valid(split)


class Check:
    """One kind of leakage. Subclasses set ``name`` and implement ``applies`` and ``run``.

    ``order`` sorts checks: similarity checks run first so later ones can use their links.
    """

    name: str = ""
    order: int = 50
    description: str = ""

    def applies(self, splits: Splits) -> bool:
        return True

    def needs(self, splits: Splits) -> set[str]:
        """Signature kinds this check reads (computed together in one pass before checks run)."""
        return set()

    def run(self, ctx: AuditContext) -> list[Finding]:  # pragma: no cover - abstract
        raise NotImplementedError


CHECKS: dict[str, type[Check]] = {}


def register_check(cls: type[Check]) -> type[Check]:
    """Class decorator: make a check available under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    CHECKS[cls.name] = cls
    return cls


def get_check(name: str) -> Check:
    from . import load_all

    load_all()
    if name not in CHECKS:
        raise KeyError(f"unknown check {name!r}; checks are {sorted(CHECKS)}")
    return CHECKS[name]()


def available_checks() -> list[str]:
    from . import load_all

    load_all()
    return sorted(CHECKS, key=lambda n: (CHECKS[n].order, n))
