"""leakguard.search.knn.nearest: the numpy path (small searches) and the FAISS path (large ones,
when installed) find the same neighbours; the best of equal scores is the first index."""
import numpy as np
import pytest

from leakguard.search import knn
from leakguard.search.knn import nearest


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_numpy_path_finds_the_faiss_neighbours(metric):
    pytest.importorskip("faiss")
    rng = np.random.default_rng(0)
    base = rng.normal(size=(3000, 24)).astype(np.float32)
    query = rng.normal(size=(300, 24)).astype(np.float32)
    assert len(query) * len(base) <= knn.FAISS_FROM  # the default takes numpy here
    for k in (1, 5):
        s_default, i_default = nearest(base, query, k=k, metric=metric)
        s_np, i_np = nearest(base, query, k=k, metric=metric, use_faiss=False)
        s_fa, i_fa = nearest(base, query, k=k, metric=metric, use_faiss=True)
        assert np.array_equal(i_default, i_np) and np.array_equal(s_default, s_np)
        assert np.array_equal(i_np, i_fa), (metric, k)
        assert np.allclose(s_np, s_fa, atol=1e-5)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_best_of_equal_scores_is_the_first_index(metric):
    rng = np.random.default_rng(1)
    base = rng.normal(size=(400, 8)).astype(np.float32)
    base[[7, 150, 399]] = base[60]          # four identical index vectors
    query = np.stack([base[60], base[60] * 1.0001, rng.normal(size=8).astype(np.float32)])
    _, idx = nearest(base, query, k=1, metric=metric, use_faiss=False)
    assert idx[0, 0] == 7 and idx[1, 0] == 7
    _, idx2 = nearest(base, query, k=4, metric=metric, use_faiss=False)
    assert set(idx2[0]) == {7, 60, 150, 399}


def test_large_index_is_searched_in_bounded_blocks():
    """A numpy search over a large index keeps at most 2**24 scores in flight (several query
    blocks here) and finds each query's own row."""
    rng = np.random.default_rng(2)
    base = rng.normal(size=(70_000, 6)).astype(np.float32)
    rows = rng.choice(len(base), size=600, replace=False)
    sims, idx = nearest(base, base[rows] * 2.0, k=2, metric="cosine", use_faiss=False)
    assert np.array_equal(idx[:, 0], rows)
    assert np.all(sims[:, 0] >= sims[:, 1])
