"""Errors leakguard raises. Each names the split, the sample index and the file where it can."""
from __future__ import annotations


class LeakGuardError(Exception):
    """Base class of leakguard's errors."""


class InputError(LeakGuardError, ValueError):
    """The data given to the audit cannot be used as it is (wrong lengths, unknown modality...)."""


class SampleError(LeakGuardError):
    """One sample could not be read or canonicalised.

    The audit catches it, skips the sample and counts it in the report (``report.skipped``).
    """

    def __init__(self, reason: str, *, split: str | None = None, index: int | None = None,
                 file: str | None = None):
        self.reason = reason
        self.split = split
        self.index = index
        self.file = file
        super().__init__(self._message())

    def _message(self) -> str:
        where = []
        if self.split is not None:
            where.append(f"split {self.split!r}")
        if self.index is not None:
            where.append(f"index {self.index}")
        if self.file is not None:
            where.append(f"file {self.file}")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason

    def located(self, split: str, index: int, file: str | None) -> "SampleError":
        """The same error with its location filled in."""
        return SampleError(self.reason, split=split, index=index, file=file or self.file)


class LeakageDetected(LeakGuardError, RuntimeError):
    """Raised by the integrations when ``on_leak="fail"`` and the audit found leakage."""

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report
