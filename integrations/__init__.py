"""Framework integrations, installed as ``leakguard.integrations`` (Lightning, Ultralytics)."""


def audit_threads():
    """A context for the callbacks' audits: BLAS (OpenBLAS / MKL) on one thread.

    The audit's matrix products are small (thumbnails, block means, a few hundred neighbours); on a
    many-core training machine BLAS wakes a thread per core for each, and they spin on after it.
    Measured on 16 cores (1000 images, the Lightning overhead benchmark): a cold audit 4.1 s wall /
    12.4 s CPU without the limit, 3.0 s / 9.2 s with it; a later fit 4.1 -> 2.4 s CPU at the same
    wall time. OpenMP (FAISS) is left alone: the engine bounds its small searches itself, and a
    large search keeps its threads.

    >>> with audit_threads():          # doctest: +SKIP
    ...     report = lg.audit(...)
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")
