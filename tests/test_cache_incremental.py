"""Re-audits through the cache (AuditConfig(cache_dir=...)): the same findings as without it, and a
grown dataset costs only the work its new samples bring (issue 6: +1 % data, <= 5 % of the audit).

The costly image verifications are kept in the cache's sqlite file under ``image/verified/...``,
keyed by the two images' content digests; the tests read that table to see which pairs an audit
verified (every pair it verifies is written there, every pair it reads back is not).
"""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

import leakguard as lg
from leakguard.signatures.exact import image_digest
from leakguard.similarity.image import VERIFY_VERSION, stable_sample
from leakguard.similarity.image_planting import augment, base_tiles

pytest.importorskip("skimage")

CHECKS = ["exact_duplicate", "augmented_duplicate"]
# a calibration sample smaller than the training split, so the content-ranked choice is exercised
OPTIONS = {"augmented_duplicate": {"null_samples": 16}}


@pytest.fixture(scope="module")
def data():
    """Training tiles, evaluation = augmented copies of some + unseen tiles; and what gets added later:
    two new training tiles, a copy of one of them, a copy of an old training tile, an unseen tile."""
    tiles = base_tiles(96, 3, photos=("astronaut", "camera", "coffee", "chelsea", "rocket", "brick",
                                      "grass", "coins", "clock"), seed=3)
    rng = np.random.default_rng(4)
    train, spare = tiles[:20], tiles[20:]
    families = ["hflip", "rotate", "crop", "jitter", "rot90+noise", "crop+jitter"]
    val = [augment(train[s], f, rng) for s, f in zip((0, 3, 6, 9, 12, 15), families)] + spare[:3]
    new_train = spare[3:5]
    new_val = [augment(new_train[0], "rotate", rng), augment(train[18], "hflip+jpeg", rng), spare[5]]
    return train, val, new_train, new_val


def _audit(splits, cache_dir=None, **config):
    return lg.audit(splits, modality="image", checks=CHECKS,
                    config=lg.AuditConfig(cache_dir=cache_dir, progress=False, check_options=OPTIONS, **config))


def _summary(report) -> list:
    """Everything a reader sees of the findings: pairs with scores, thresholds, transforms."""
    out = []
    for f in report.findings:
        pairs = f.pairs[["split_a", "index_a", "split_b", "index_b", "score"]].to_dict("records") \
            if f.pairs is not None else None
        out.append((f.check, f.title, f.detail, pairs, f.extra.get("threshold"), f.extra.get("transforms"),
                    (f.extra.get("calibration") or {}).get("null_quantiles")))
    return out


def _verified_rows(cache_dir) -> set[bytes]:
    with sqlite3.connect(cache_dir / "signatures.sqlite") as db:
        rows = db.execute("SELECT key FROM sig WHERE kind LIKE ?", (f"image/verified/{VERIFY_VERSION}/%",))
        return {bytes(r[0]) for r in rows}


def test_reaudit_with_cache_gives_the_same_findings_and_verifies_nothing_again(data, tmp_path):
    train, val, _, _ = data
    splits = {"train": train, "val": val}
    plain = _audit(splits)
    cold = _audit(splits, tmp_path)
    verified_first = _verified_rows(tmp_path)
    warm = _audit(splits, tmp_path)
    assert _summary(cold) == _summary(plain)
    assert _summary(warm) == _summary(plain)
    assert any(f.check == "augmented_duplicate" for f in plain.findings)   # the copies were found
    assert len(plain.leaked("val", check="augmented_duplicate")) >= 4
    # the first audit verified pairs (calibration and audit) and kept them; the second read them all back
    assert len(verified_first) >= 10
    assert _verified_rows(tmp_path) == verified_first


def test_grown_dataset_verifies_only_pairs_it_has_not_verified_before(data, tmp_path):
    train, val, new_train, new_val = data
    _audit({"train": train, "val": val}, tmp_path)
    before = _verified_rows(tmp_path)
    grown = {"train": train + new_train, "val": val + new_val}
    report = _audit(grown, tmp_path)
    added = _verified_rows(tmp_path) - before
    # what a fresh audit of the grown data verifies, in a cache of its own
    needed = _verified_rows(_audit_into(grown, tmp_path / "fresh"))
    # keys: digest of the training-side image (16 bytes), digest of the other one, path, options
    assert added == needed - before, "the grown audit verified exactly the pairs it needs and the cache lacks"
    assert report.meta["cache"]["image_pairs"]["verified"] == len(added)     # none of them twice
    assert report.meta["cache"]["image_pairs"]["read_back"] > 0 and needed & before   # the rest read back
    new_digests = {image_digest(np.asarray(img)) for img in new_train + new_val}
    with_new = [k for k in added if k[:16] in new_digests or k[16:32] in new_digests]
    # most of the work is the new images' pairs (pairs of old images only come in where the
    # calibration's gate, a function of the training split, moved when the split grew)
    assert len(with_new) >= len(added) / 2
    # and the grown audit through the cache says what an audit without one says
    assert _summary(report) == _summary(_audit(grown))
    leaked = set(report.leaked("val", check="augmented_duplicate").tolist())
    assert {len(val), len(val) + 1} <= leaked          # both new copies found
    # old evaluation images whose candidates and gate decisions held were not verified again
    assert report.meta["cache"]["image"]["eval_reused"] >= 1


def _audit_into(splits, cache_dir):
    _audit(splits, cache_dir)
    return cache_dir


def test_stable_sample_keeps_its_choice_when_samples_are_added(rng):
    digests = [rng.bytes(16) for _ in range(1000)]
    first = stable_sample(digests, 200, random_state=0)
    grown = stable_sample(digests + [rng.bytes(16) for _ in range(10)], 200, random_state=0)
    assert len(first) == len(grown) == 200 and len(set(first.tolist())) == 200
    # at most the ~2 samples that new ones outrank leave; a positional random choice would change most
    assert len(set(first.tolist()) - set(grown.tolist())) <= 8
    assert set(stable_sample(digests, 200, random_state=1).tolist()) != set(first.tolist())
    assert stable_sample(digests[:50], 200).tolist() == list(range(50))


# ---- text: the semantic check's TF-IDF vectors and threshold, kept under the training split ----

def _semantic_rows(cache_dir) -> int:
    from leakguard.similarity.text import SEMANTIC_VERSION

    with sqlite3.connect(cache_dir / "signatures.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM sig WHERE kind = ?", (f"text/semantic/{SEMANTIC_VERSION}",)).fetchone()[0]


def test_tfidf_embedder_state_round_trip_gives_the_same_vectors():
    from leakguard.similarity.synthetic import prose_corpus
    from leakguard.similarity.text import TfidfTextEmbedder

    corpus = prose_corpus(120)
    fitted = TfidfTextEmbedder(n_components=64).fit(corpus[:100])
    loaded = TfidfTextEmbedder(n_components=64).load_state(fitted.fitted_state())
    assert np.array_equal(fitted(corpus[100:]), loaded(corpus[100:]))
    # the projection matrix kept with it (not drawn again) gives the same vectors too
    kept = TfidfTextEmbedder(n_components=64).load_state(fitted.fitted_state(), fitted.projection_components())
    assert np.array_equal(fitted(corpus[100:]), kept(corpus[100:]))
    assert (kept._projection.components_ != fitted._projection.components_).nnz == 0
    assert not np.array_equal(TfidfTextEmbedder(n_components=64).fit(corpus[:90])(corpus[100:]),
                              fitted(corpus[100:]))  # a fit on other texts is another embedder


def test_text_semantic_reaudit_reads_vectors_back_and_embeds_only_new_texts(tmp_path, monkeypatch):
    from leakguard.signatures.exact import text_digest
    from leakguard.similarity.synthetic import paraphrase, prose_corpus

    corpus = prose_corpus(330)
    rng = np.random.default_rng(6)
    train, clean, later = corpus[:250], corpus[250:300], corpus[300:330]
    para = [paraphrase(train[s], rng) for s in rng.choice(len(train), size=12, replace=False)]
    splits = {"train": train, "val": clean + para}

    def audit(splits, cache_dir=None):
        return lg.audit(splits, checks=["exact_duplicate", "semantic_duplicate"],
                        config=lg.AuditConfig(cache_dir=cache_dir, progress=False))

    plain = audit(splits)
    assert len(plain.leaked("val", check="semantic_duplicate")) >= 10
    cold = audit(splits, tmp_path)
    rows = _semantic_rows(tmp_path)
    # one vector per text, the threshold, the fitted vocabulary / IDF and the projection matrix
    # (cached per content digest: texts equal after NFC and whitespace folding share one vector)
    assert rows == len({text_digest(t) for t in train + clean + para}) + 3
    assert _summary(audit(splits, tmp_path)) == _summary(cold) == _summary(plain)
    assert _semantic_rows(tmp_path) == rows                            # the re-audit embedded nothing
    # new evaluation texts (training split unchanged): only they are embedded, findings as without a cache
    grown = {"train": train, "val": clean + para + later + [paraphrase(train[3], rng)]}
    expected = _summary(audit(grown))
    from leakguard.similarity.text import TfidfTextEmbedder

    def no_refit(self, texts):
        raise AssertionError("the training split was fitted before: its vocabulary is in the cache")

    with monkeypatch.context() as m:
        m.setattr(TfidfTextEmbedder, "fit", no_refit)
        got = audit(grown, tmp_path)
    assert _summary(got) == expected
    assert not [f for f in got.findings if "could not run" in f.title]
    seen = {text_digest(t) for t in train + clean + para}
    new_texts = {text_digest(t) for t in grown["val"]} - seen
    assert new_texts and _semantic_rows(tmp_path) == rows + len(new_texts)
    # a changed training split refits: its vectors are kept under its own content, not mixed
    moved = {"train": train[:-5], "val": splits["val"]}
    assert _summary(audit(moved, tmp_path)) == _summary(audit(moved))
    assert _semantic_rows(tmp_path) > rows + len(later) + 3 + len(train) - 5


def test_text_semantic_training_vectors_are_read_as_one_blob(tmp_path, monkeypatch):
    """New evaluation texts are searched against the training vectors: a re-audit reads them from the
    fit's one blob (kind text/semantic-matrix), not text by text, with the findings of no cache."""
    from leakguard.similarity.synthetic import paraphrase, prose_corpus
    from leakguard.similarity.text import SEMANTIC_VERSION, _SemanticCache

    corpus = prose_corpus(300)
    rng = np.random.default_rng(8)
    train, clean, later = corpus[:240], corpus[240:280], corpus[280:300]
    splits = {"train": train, "val": clean + [paraphrase(train[s], rng) for s in (1, 5, 9, 30, 77)]}

    def audit(splits, cache_dir=None):
        return lg.audit(splits, checks=["exact_duplicate", "semantic_duplicate"],
                        config=lg.AuditConfig(cache_dir=cache_dir, progress=False))

    audit(splits, tmp_path)
    with sqlite3.connect(tmp_path / "signatures.sqlite") as db:
        matrices = db.execute("SELECT COUNT(*) FROM sig WHERE kind = ?",
                              (f"text/semantic-matrix/{SEMANTIC_VERSION}",)).fetchone()[0]
    assert matrices == 1
    grown = {"train": train, "val": splits["val"] + later + [paraphrase(train[12], rng)]}
    asked: list[int] = []
    real = _SemanticCache.vectors
    monkeypatch.setattr(_SemanticCache, "vectors",
                        lambda self, digests, *a: asked.append(len(digests)) or real(self, digests, *a))
    got = audit(grown, tmp_path)
    monkeypatch.undo()
    assert sum(asked) == len(later) + 1            # only the new evaluation texts, no training text
    assert _summary(got) == _summary(audit(grown))
    assert len(got.leaked("val", check="semantic_duplicate")) >= 5


# ---- image: calibration and per-evaluation-image results kept under the training split ----

def _memo_rows(cache_dir) -> list[bytes]:
    from leakguard.similarity.image_memo import KIND

    with sqlite3.connect(cache_dir / "signatures.sqlite") as db:
        return [bytes(r[0]) for r in db.execute("SELECT key FROM sig WHERE kind = ?", (KIND,))]


def test_image_reaudit_prepares_thumbnails_only_for_images_it_searches(data, tmp_path, monkeypatch):
    """ImageSplitData prepares thumbnails on first use: a re-audit of the same data (everything read
    back) prepares none; one new evaluation image prepares that image's thumbnail only (the rows of a
    subset, not the whole split). The findings are those of an audit without cache."""
    from leakguard.similarity import image as image_backend

    train, val, _, new_val = data
    splits = {"train": train, "val": val}
    _audit(splits, tmp_path)
    prepared: list[int] = []
    real = image_backend.prepare
    monkeypatch.setattr(image_backend, "prepare", lambda thumbs: prepared.append(len(thumbs)) or real(thumbs))
    again = _audit(splits, tmp_path)
    assert prepared == []
    grown = {"train": train, "val": val + new_val[2:]}   # one unseen evaluation tile
    got = _audit(grown, tmp_path)
    assert len(val) + 1 not in prepared and 1 in prepared   # the new tile alone on the evaluation side
    monkeypatch.undo()
    assert _summary(again) == _summary(_audit(splits))
    assert _summary(got) == _summary(_audit(grown))
def test_new_evaluation_images_alone_are_searched_when_the_training_split_is_unchanged(data, tmp_path):
    from leakguard.similarity import image as image_backend

    train, val, _, new_val = data
    splits = {"train": train, "val": val}
    cold = _audit(splits, tmp_path)
    rows = _memo_rows(tmp_path)
    # per evaluation image: by training split and by candidates (image_memo.kept_pairs); + the calibration
    assert len(rows) == 2 * len({image_digest(np.asarray(v)) for v in val}) + 1
    grown = {"train": train, "val": val + new_val}
    calls = []
    real = image_backend.calibrate

    def counting_calibrate(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    searched = []
    real_search = image_backend.candidate_pairs

    def counting_search(a, b, *args, **kwargs):
        searched.append(len(b))
        return real_search(a, b, *args, **kwargs)

    import unittest.mock as mock

    with mock.patch.object(image_backend, "calibrate", counting_calibrate), \
            mock.patch.object(image_backend, "candidate_pairs", counting_search):
        got = _audit(grown, tmp_path)
        same = _audit(splits, tmp_path)
    assert not calls, "the training split is unchanged: its calibration is read back"
    assert searched == [len(new_val)], "only the new evaluation images are searched (once), the rest read back"
    assert got.meta["cache"]["image"] == {"calibration": "read back", "eval_read": len(val),
                                          "eval_searched": len(new_val)}
    assert same.meta["cache"]["image"]["eval_searched"] == 0
    # the same findings as audits without cache
    assert _summary(same) == _summary(cold) == _summary(_audit(splits))
    assert _summary(got) == _summary(_audit(grown))
    # the new copy of a training tile is found (the other new copy's source is not in this training split)
    assert len(val) + 1 in set(got.leaked("val", check="augmented_duplicate").tolist())
    # a grown training split is another key: calibrated and searched again, as without cache
    more = {"train": train + data[2], "val": val + new_val}
    with mock.patch.object(image_backend, "calibrate", counting_calibrate):
        assert _summary(_audit(more, tmp_path)) == _summary(_audit(more))
    assert len(calls) == 2


def test_text_calibrations_are_read_back_while_the_training_split_is_unchanged(tmp_path, monkeypatch):
    """The partial check's passage null and the augmented check's self-join are functions of the
    training split: with new evaluation texts only, neither runs again; findings as without cache."""
    from leakguard.similarity import text as text_backend
    from leakguard.similarity.synthetic import augment_text, prose_corpus

    corpus = prose_corpus(260)
    rng = np.random.default_rng(8)
    train, clean = corpus[:200], corpus[200:240]
    copies = [augment_text(train[s], rng, "combined", 0.1) for s in (1, 5, 9)]
    passage = [train[20][: len(train[20]) // 2] + " " + corpus[245]]
    splits = {"train": train, "val": clean + copies + passage}
    checks = ["exact_duplicate", "augmented_duplicate", "partial_duplicate"]

    def audit(splits, cache_dir=None, **config):
        return lg.audit(splits, checks=checks, config=lg.AuditConfig(cache_dir=cache_dir, progress=False, **config))

    cold = audit(splits, tmp_path)
    assert cold.meta["cache"]["kept"] == {"text/augmented/threshold": "computed", "text/partial/min_run": "computed"}
    assert len(cold.leaked("val", check="augmented_duplicate")) >= 3
    grown = {"train": train, "val": splits["val"] + corpus[240:245] + [augment_text(train[7], rng, "combined", 0.1)]}
    expected = _summary(audit(grown))

    def no_recalibration(*args, **kwargs):
        raise AssertionError("the training split is unchanged: its calibration is in the cache")

    with monkeypatch.context() as m:
        m.setattr(text_backend, "_passage_null", no_recalibration)
        m.setattr(text_backend, "_augmented_threshold", no_recalibration)
        m.setattr(text_backend, "_inverted_index", no_recalibration)   # the training split's index is kept too
        got = audit(grown, tmp_path)
        same = audit(splits, tmp_path)
    assert _summary(same) == _summary(cold) == _summary(audit(splits))
    assert _summary(got) == expected
    assert got.meta["cache"]["kept"] == {"text/augmented/threshold": "read back", "text/partial/min_run": "read back"}
    # each pair's Jaccard / shared passage is kept by the two texts' content: the same data again
    # computes none, new evaluation texts only their own pairs
    for name in ("text/augmented/jaccard", "text/partial/passages"):
        assert same.meta["cache"]["pairs"][name]["computed"] == 0 < same.meta["cache"]["pairs"][name]["read_back"]
        assert got.meta["cache"]["pairs"][name]["computed"] < cold.meta["cache"]["pairs"][name]["computed"]
        assert got.meta["cache"]["pairs"][name]["read_back"] == cold.meta["cache"]["pairs"][name]["computed"]
    assert got.meta["cache"]["pairs"]["text/augmented/jaccard"]["computed"] > 0      # the new copy's pairs
    assert len(got.leaked("val", check="augmented_duplicate")) > len(cold.leaked("val", check="augmented_duplicate"))
    # one training text more, with recalibrate_growth=0: calibrated again, as an audit without cache is
    more = {"train": train + corpus[250:251], "val": grown["val"]}
    again = audit(more, tmp_path, recalibrate_growth=0)
    assert again.meta["cache"]["kept"] == {"text/augmented/threshold": "computed", "text/partial/min_run": "computed"}
    assert _summary(again) == _summary(audit(more))


def test_grown_training_split_reverifies_only_evaluation_images_whose_candidates_changed(data, tmp_path):
    """With the same threshold and gate (here: set by the user), an evaluation image whose candidate
    training images are the same after the training split grew gets its matches back unverified."""
    from unittest import mock

    from leakguard.similarity import image as image_backend

    train, val, new_train, _ = data
    options = {"augmented_duplicate": {"threshold": 0.9}}

    def audit(splits, cache_dir=None):
        return lg.audit(splits, modality="image", checks=CHECKS,
                        config=lg.AuditConfig(cache_dir=cache_dir, progress=False, check_options=options))

    audit({"train": train, "val": val}, tmp_path)
    # the training split gains two tiles and a flipped copy of evaluation image 6 (an unseen tile so
    # far): image 6 has a new candidate and must be verified again to be found
    flipped = augment(val[6], "hflip", np.random.default_rng(9))
    grown = {"train": train + new_train + [flipped], "val": val}
    verified_rows = []
    real = image_backend.verify_candidates

    given: list[int] = []

    def spy(a, b, ia, ib, *args, **kwargs):
        verified_rows.append(len(set(np.asarray(ib).tolist())))
        given.append(len(b))
        return real(a, b, ia, ib, *args, **kwargs)

    with mock.patch.object(image_backend, "verify_candidates", spy):
        got = audit(grown, tmp_path)
    stats = got.meta["cache"]["image"]
    # the training split changed: every image searched again, or its kept candidates proven unchanged
    assert stats["eval_read"] == 0 and stats["eval_searched"] + stats.get("eval_search_kept", 0) == len(val)
    reused = stats.get("eval_reused", 0)
    assert 0 < reused < len(val)                 # some images got a new training image as candidate
    assert sum(verified_rows) <= len(val) - reused
    # verification gets the evaluation images it verifies again, not the whole split (whose thumbnails
    # and crop windows it would make for every image)
    assert given == [len(val) - reused]
    assert _summary(got) == _summary(audit(grown))
    assert 6 in set(got.leaked("val", check="augmented_duplicate").tolist())


def test_image_previews_are_read_back_by_content(data, tmp_path, monkeypatch):
    """The report's thumbnails are kept in the cache by the image's digest: a re-audit (here of the
    same images in another order) draws none of them again and shows the same pictures."""
    from leakguard.report import previews

    train, val, _, _ = data
    first = _audit({"train": train, "val": val}, tmp_path)
    assert first.samples and all("thumb" in s for s in first.samples.values())
    order = list(range(len(val)))[::-1]

    def no_drawing(*args, **kwargs):
        raise AssertionError("this thumbnail is in the cache")

    with monkeypatch.context() as m:
        m.setattr(previews, "png_data_uri", no_drawing)
        again = _audit({"train": train, "val": [val[i] for i in order]}, tmp_path)
    assert {k: v["thumb"] for k, v in again.samples.items() if k.startswith("train:")} == \
        {k: v["thumb"] for k, v in first.samples.items() if k.startswith("train:")}
    moved = {f"val:{order.index(int(k.split(':')[1]))}": v["thumb"] for k, v in first.samples.items()
             if k.startswith("val:")}
    assert {k: v["thumb"] for k, v in again.samples.items() if k.startswith("val:")} == moved
    assert again.samples == _audit({"train": train, "val": [val[i] for i in order]}).samples


def test_grown_training_split_searches_only_evaluation_images_the_added_images_can_reach(tmp_path, monkeypatch):
    """Training images added to a split (the earlier ones still there, in order) change an evaluation
    image's candidates only by entering one of its searches: images none of them can enter keep their
    candidates unsearched, images they enter get the kept entries merged with the added images' and
    ranked again, and the candidates, matches and findings equal a full search's."""
    import shutil

    from leakguard.similarity import image as image_backend
    from leakguard.similarity import image_memo

    tiles = base_tiles(96, 9, photos=("astronaut", "camera", "coffee", "chelsea", "rocket", "brick", "grass",
                                      "coins", "clock"), seed=3)
    rng = np.random.default_rng(4)
    train, spare = tiles[:60], tiles[60:]
    families = ["hflip", "rotate", "crop", "jitter", "rot90+noise", "crop+jitter"]
    val = [augment(train[s], f, rng) for s, f in zip((0, 9, 18, 27, 36, 45), families)] + spare[:6]
    flipped = augment(val[7], "hflip", np.random.default_rng(9))      # reaches evaluation image 7
    _audit({"train": train, "val": val}, tmp_path / "a")
    for grown in ({"train": train + [spare[6], flipped], "val": val},                       # appended
                  {"train": train[:7] + [flipped] + train[7:] + [spare[6]], "val": val}):   # inserted
        for name in ("skip", "full"):
            shutil.rmtree(tmp_path / name, ignore_errors=True)
            shutil.copytree(tmp_path / "a", tmp_path / name)
        pairs: dict[str, list] = {}
        real_kept_pairs = image_backend.kept_pairs

        def spy(ctx, a, b, *args, **kwargs):
            out = real_kept_pairs(ctx, a, b, *args, **kwargs)
            pairs.setdefault(mode, []).append((out[0].tolist(), out[1].tolist(), [m.score for m in out[2]]))
            return out

        monkeypatch.setattr(image_backend, "kept_pairs", spy)
        mode = "skip"
        got = _audit(grown, tmp_path / "skip", recalibrate_growth=0)   # exact: calibrated again
        monkeypatch.setattr(image_memo, "SKIP_SEARCH", False)
        mode = "full"
        full = _audit(grown, tmp_path / "full", recalibrate_growth=0)
        monkeypatch.undo()
        stats = got.meta["cache"]["image"]
        assert stats.get("eval_search_kept", 0) >= 3                        # fails with SKIP_SEARCH off
        # images an added one entered a kNN list of: their kept entries merged with the added images' and
        # ranked again, not searched (fails with MERGE_RANKED off: 0 merged, 8 searched)
        assert stats.get("eval_search_merged", 0) >= 5 and stats["eval_searched"] <= 2
        assert stats["eval_searched"] + stats["eval_search_kept"] == len(val)
        assert "eval_search_kept" not in full.meta["cache"]["image"]
        assert pairs["skip"] == pairs["full"]                                # candidates and matches
        assert _summary(got) == _summary(full) == _summary(_audit(grown))
        assert 7 in set(got.leaked("val", check="augmented_duplicate").tolist())
    # a reordered training split: nothing is kept, every evaluation image is searched
    moved = {"train": train[::-1], "val": val}
    again = _audit(moved, tmp_path / "a")
    assert again.meta["cache"]["image"]["eval_searched"] == len(val)
    assert "eval_search_kept" not in again.meta["cache"]["image"]
    assert _summary(again) == _summary(_audit(moved))


def test_kept_pairs_are_reused_only_while_the_gate_decides_each_pair_the_same():
    """Key 2 of image_memo.kept_pairs leaves the gate out: each kept pair's cheap evidence is judged
    by the current gate, and a changed decision (a pair verified now, skipped then) means verify again."""
    from leakguard.similarity.image_align import Match
    from leakguard.similarity.image_memo import _decode_by_candidates, _encode_by_candidates, _gate_decisions

    evidence = np.array([[0.95, 0.2, np.nan, 30.0], [0.3, 0.4, 0.5, 9.0]])
    gate = {"share": 0.02, "r16": 0.9, "rwin": 0.8, "rdisc": 0.85, "bits": 11}
    decided = _gate_decisions(gate, evidence)
    assert decided.tolist() == [True, True]                 # r16 reaches 0.9; 9 bits < 11
    matches = [Match(0.97, 2, 5.0, (0.8, 0.9), True, False, 40), Match(0.41, 0)]
    digests, back, ev, dec = _decode_by_candidates(
        _encode_by_candidates([b"a" * 16, b"b" * 16], matches, evidence, decided))
    assert digests == [b"a" * 16, b"b" * 16] and back == matches
    assert np.array_equal(ev, evidence, equal_nan=True) and dec.tolist() == [True, True]
    moved = {**gate, "bits": 8}                               # the second pair is no longer verified
    assert _gate_decisions(moved, ev).tolist() == [True, False]
    assert _gate_decisions(None, ev).tolist() == [True, True]
    assert _decode_by_candidates(b"\x01" + b"\x00" * 7 + b"short") is None


def test_stack_halving_is_bit_equal_to_the_per_image_halving():
    """image._stack_to_side (the 16 px thumbnails of whole splits, every audit that searches) adds the
    2 x 2 cells in numpy's own order: the same float32 bits as image_align._halve per image."""
    from leakguard.similarity.image import _stack_to_side, _to_side

    rng = np.random.default_rng(1)
    for n, scale in ((64, 1e3), (33, 1.0), (100, 1e-4), (17, 1e6)):
        stack = (rng.normal(size=(40, n, n)) * scale).astype(np.float32)
        for side in (16, 8):
            got = _stack_to_side(stack, side)
            assert got.dtype == np.float32
            assert np.array_equal(got, np.stack([_to_side(im, side) for im in stack]))


def test_stack_dihedral_is_the_stack_of_each_images_dihedral_transform():
    """image._stack_dihedral (the Fourier candidates' 8 transforms of a whole split) gives the array
    stacking each image's signatures.image.dihedral gave: same shape, same bytes, C-contiguous."""
    from leakguard.signatures.image import dihedral
    from leakguard.similarity.image import _stack_dihedral, fourier_descriptor

    stack = np.random.default_rng(2).normal(size=(25, 16, 12)).astype(np.float32)   # not square: axes matter
    for d in range(8):
        got, want = _stack_dihedral(stack, d), np.stack([dihedral(p, d) for p in stack])
        assert got.flags.c_contiguous and got.shape == want.shape and got.tobytes() == want.tobytes()
        assert fourier_descriptor(got[:, :12, :12]).tobytes() == fourier_descriptor(want[:, :12, :12]).tobytes()


def test_library_versions_in_the_code_fingerprint_are_the_distributions_versions():
    """memo reads a distribution's version from its metadata's header lines (a re-audit in a new process
    pays it): the same string importlib.metadata.version gives, for every distribution installed here."""
    import importlib.metadata as md

    from leakguard.similarity.memo import _distribution_version

    names = sorted({d.metadata["Name"] for d in md.distributions() if d.metadata["Name"]})
    assert len(names) > 20
    assert [_distribution_version(n) for n in names] == [md.version(n) for n in names]
    with pytest.raises(md.PackageNotFoundError):
        _distribution_version("no-such-distribution-leakguard")


def test_kept_pair_values_reads_back_each_pair_by_its_two_digests(tmp_path):
    """memo.kept_pair_values joins the asked pairs with the kept ones on (b sample, a's full 16-byte
    digest): values equal compute's, pairs seen before are read back, only new ones computed -- also
    when the splits are reordered and grown, a sample repeats, or two digests share their first 8 bytes."""
    from types import SimpleNamespace

    from leakguard.signatures.cache import SignatureCache
    from leakguard.similarity.memo import kept_pair_values

    rng = np.random.default_rng(5)
    a = [bytes(rng.integers(0, 256, 16, dtype=np.uint8)) for _ in range(60)]
    a[7] = a[3][:8] + bytes(8)                                     # same first half as a[3]
    a[9] = a[4]                                                    # one content twice
    b = [bytes(rng.integers(0, 256, 16, dtype=np.uint8)) for _ in range(30)]
    value = lambda da, db: [int.from_bytes(da[:4], "little") / 7.0, -int.from_bytes(db[:4], "little") / 3.0]  # noqa: E731
    computed: list[int] = []

    def run(a_d, b_d, ia, ib):
        ctx = SimpleNamespace(signatures=SimpleNamespace(cache=cache), shared={})

        def compute(ia_, ib_):
            computed.append(len(ia_))
            return np.array([value(a_d[i], b_d[j]) for i, j in zip(ia_.tolist(), ib_.tolist())]).reshape(-1, 2)

        got = kept_pair_values(ctx, "test/pairs", ("leakguard.similarity.memo",), (1,), a_d, b_d, ia, ib, 2, compute)
        want = np.array([value(a_d[i], b_d[j]) for i, j in zip(ia, ib)]).reshape(-1, 2)
        assert np.array_equal(got, want)
        return ctx.shared["memo_pairs"]["test/pairs"]

    cache = SignatureCache(tmp_path)
    ia, ib = rng.integers(0, 40, 300), rng.integers(0, 20, 300)
    first = run(a[:40], b[:20], ia, ib)
    assert first["read_back"] == 0 and sum(computed) == 300
    cache.close()
    cache = SignatureCache(tmp_path)
    computed.clear()
    assert run(a[:40], b[:20], ia, ib) == {"computed": 0, "read_back": 300} and not computed
    order_a, order_b = rng.permutation(60), rng.permutation(30)      # reordered and grown splits
    a2, b2 = [a[i] for i in order_a], [b[j] for j in order_b]
    ia2, ib2 = rng.integers(0, 60, 500), rng.integers(0, 30, 500)
    ia2[:300], ib2[:300] = np.argsort(order_a)[ia], np.argsort(order_b)[ib]   # the first 300 pairs again
    again = run(a2, b2, ia2, ib2)
    old = {(a[i], b[j]) for i, j in zip(ia, ib)}
    seen = sum((a2[i], b2[j]) in old for i, j in zip(ia2, ib2))
    assert again == {"computed": 500 - seen, "read_back": seen} and seen >= 300
    computed.clear()
    assert run(a2, b2, ia2, ib2) == {"computed": 0, "read_back": 500} and not computed
    cache.close()


def test_kept_matches_are_written_and_read_as_image_encode_match_does():
    """image_memo encodes / decodes all pairs of an evaluation image in one array: the same bytes as
    image._encode_match per pair, and the same objects as image._decode_match (None and featureless too)."""
    from leakguard.similarity.image import _FEATURELESS, _decode_match, _encode_match
    from leakguard.similarity.image_align import Match
    from leakguard.similarity.image_memo import (_decode_by_position, _encode_by_position, _match_rows,
                                                 _matches_of_rows)

    rng = np.random.default_rng(0)
    matches = [Match(float(rng.random()), int(rng.integers(8)), float(rng.normal() * 10),
                     (float(rng.random()), float(rng.random())), bool(rng.integers(2)), bool(rng.integers(2)),
                     int(rng.integers(200))) for _ in range(40)] + [Match(0.5)]
    ia = rng.integers(0, 10_000, len(matches)).tolist()
    assert _match_rows(matches).tobytes() == b"".join(_encode_match(m) for m in matches)
    assert _encode_by_position(ia, matches) == b"".join(np.float64(i).tobytes() + _encode_match(m)
                                                        for i, m in zip(ia, matches))
    assert _decode_by_position(_encode_by_position(ia, matches)) == (ia, matches)
    assert _encode_by_position([], []) == b"" and _decode_by_position(b"") == ([], [])
    odd = [None, _FEATURELESS, *matches[:3]]                  # None / featureless: one float64 flag
    rows = np.stack([np.pad(np.frombuffer(_encode_match(m), np.float64), (0, 8))[:9] for m in odd])
    assert _matches_of_rows(rows) == [_decode_match(r.tobytes()) for r in rows] == odd
    assert _encode_by_position([1, 2], [matches[0], None]) is None      # not every pair verified: not kept


def test_image_partial_calibration_is_read_back_while_the_training_split_is_unchanged(data, tmp_path, monkeypatch):
    """The any-scale partial check calibrates on mirrored training images: with new evaluation images
    only, that calibration is read back; findings as without cache."""
    from leakguard.similarity import image_partial

    train, val, _, new_val = data

    def audit(splits, cache_dir=None):
        return lg.audit(splits, modality="image", checks=["exact_duplicate", "partial_duplicate"],
                        config=lg.AuditConfig(cache_dir=cache_dir, progress=False,
                                              check_options={"partial_duplicate": {"resized": True}}))

    cold = audit({"train": train, "val": val}, tmp_path)
    if "image/partial/calibration" not in cold.meta["cache"].get("kept", {}):
        pytest.skip("the any-scale partial path did not run (no OpenCV)")
    grown = {"train": train, "val": val + new_val}

    def no_recalibration(*args, **kwargs):
        raise AssertionError("the training split is unchanged: its calibration is in the cache")

    with monkeypatch.context() as m:
        m.setattr(image_partial, "calibrate_partial", no_recalibration)
        got = audit(grown, tmp_path)
    assert got.meta["cache"]["kept"]["image/partial/calibration"] == "read back"
    assert _summary(got) == _summary(audit(grown))


# ---- a training split that only grew a little keeps its calibration (AuditConfig.recalibrate_growth) ----

def _thresholds(report) -> dict:
    return {f.check: f.extra.get("threshold") for f in report.findings if f.pairs is not None}


def test_slightly_grown_text_training_split_keeps_its_calibrations_and_finds_copies_of_new_texts(tmp_path, monkeypatch):
    """+1 % training texts (every earlier one still there): the three text checks keep the first
    audit's calibration -- nothing is calibrated or refitted -- yet copies of the *new* training
    texts in new evaluation data are found (new training texts are still indexed and embedded).
    A removed text, growth beyond the bound (measured from the split really calibrated, so small
    additions cannot add up past it) or recalibrate_growth=0 calibrate again."""
    from leakguard.similarity import text as text_backend
    from leakguard.similarity.synthetic import augment_text, prose_corpus

    corpus = prose_corpus(330)
    rng = np.random.default_rng(8)
    train, clean = corpus[:200], corpus[200:240]
    val = clean + [augment_text(train[s], rng, "combined", 0.1) for s in (1, 5, 9)]
    new_train = corpus[300:302]
    new_val = [augment_text(new_train[0], rng, "combined", 0.1),                       # a near-copy
               new_train[1][: len(new_train[1]) // 2] + " " + corpus[310], corpus[311]]  # a passage; clean
    checks = ["exact_duplicate", "augmented_duplicate", "partial_duplicate", "semantic_duplicate"]

    def audit(splits, cache_dir=tmp_path, **config):
        return lg.audit(splits, checks=checks, config=lg.AuditConfig(cache_dir=cache_dir, progress=False, **config))

    first = audit({"train": train, "val": val})
    assert {c: v["state"] for c, v in first.meta["cache"]["calibration"].items()} == \
        {"augmented_duplicate": "computed", "partial_duplicate": "computed", "semantic_duplicate": "computed"}
    grown = {"train": train + new_train, "val": val + new_val}

    def no_calibration(*args, **kwargs):
        raise AssertionError("the training split grew by 1 %: the earlier calibration is kept")

    with monkeypatch.context() as m:
        for name in ("_passage_null", "_augmented_threshold", "null_scores"):
            if hasattr(text_backend, name):
                m.setattr(text_backend, name, no_calibration)
        m.setattr("leakguard.similarity.calibration.null_scores", no_calibration)
        m.setattr(text_backend.TfidfTextEmbedder, "fit", no_calibration)
        got = audit(grown)
        again = audit(grown)                      # the same grown data: still kept from the 200 texts
    kept = {"state": "kept", "training": 202, "kept_from": 200, "growth": 0.01}
    assert got.meta["cache"]["calibration"] == {c: kept for c in
                                                ("augmented_duplicate", "partial_duplicate", "semantic_duplicate")}
    assert again.meta["cache"]["calibration"] == got.meta["cache"]["calibration"]
    assert not [f for f in got.findings if "could not run" in f.title]
    assert _summary(again) == _summary(got)
    assert {len(val), len(val) + 1} <= set(got.leaked("val").tolist())   # copies of the new training texts
    assert len(val) + 2 not in set(got.leaked("val").tolist())
    assert set(range(len(clean), len(val))) <= set(got.leaked("val").tolist())
    assert _thresholds(got)["augmented_duplicate"] == _thresholds(first)["augmented_duplicate"]
    assert "thresholds kept from an audit of 200 training samples (+1.0 %)" in got.to_html()
    assert "thresholds kept from" not in first.to_html()
    # recalibrate_growth=0: the exact behaviour, the findings of an audit without cache
    exact = audit(grown, recalibrate_growth=0)
    assert {v["state"] for v in exact.meta["cache"]["calibration"].values()} == {"computed"}
    assert _summary(exact) == _summary(audit(grown, cache_dir=None))
    # one earlier training text removed (another added): calibrated again
    moved = audit({"train": train[1:] + new_train, "val": grown["val"]}, cache_dir=tmp_path / "moved")
    assert {v["state"] for v in moved.meta["cache"]["calibration"].values()} == {"computed"}
    # growth is measured from the split calibrated on: +2 % then +5 % are kept from 200, +6 % is not
    lineage = tmp_path / "lineage"
    audit({"train": train, "val": val}, cache_dir=lineage)
    for extra, state, kept_from in ((4, "kept", 200), (10, "kept", 200), (12, "computed", None), (13, "kept", 212)):
        report = audit({"train": train + corpus[300:300 + extra], "val": val}, cache_dir=lineage)
        for c, v in report.meta["cache"]["calibration"].items():
            assert (v["state"], v.get("kept_from")) == (state, kept_from), (extra, c, v)


def test_slightly_grown_image_training_split_keeps_its_calibration_and_finds_copies_of_new_images(data, tmp_path):
    """The image augmented check keeps threshold, null and gate when one tile (5 %) joins 20; the new
    tile is still searched, so its rotated copy among new evaluation images is found. Two tiles more
    (10 %) or recalibrate_growth=0 calibrate again (the latter: the findings of an audit without cache)."""
    from unittest import mock

    from leakguard.similarity import image as image_backend

    train, val, new_train, new_val = data
    first = _audit({"train": train, "val": val}, tmp_path)
    grown = {"train": train + new_train[:1], "val": val + new_val}
    calls = []
    real = image_backend.calibrate

    def counting_calibrate(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    with mock.patch.object(image_backend, "calibrate", counting_calibrate):
        got = _audit(grown, tmp_path)
        assert not calls, "one tile more (5 %): the earlier calibration is kept"
        assert got.meta["cache"]["calibration"]["augmented_duplicate"] == \
            {"state": "kept", "training": 21, "kept_from": 20, "growth": 0.05}
        assert got.meta["cache"]["image"]["calibration"] == "kept"
        assert _thresholds(got)["augmented_duplicate"] == _thresholds(first)["augmented_duplicate"]
        assert len(val) in set(got.leaked("val", check="augmented_duplicate").tolist())   # copy of the new tile
        assert set(first.leaked("val").tolist()) <= set(got.leaked("val").tolist())
        more = _audit({"train": train + new_train, "val": val + new_val}, tmp_path)   # +10 %
        assert len(calls) == 1 and more.meta["cache"]["calibration"]["augmented_duplicate"]["state"] == "computed"
        exact = _audit(grown, tmp_path, recalibrate_growth=0)
        assert len(calls) == 2 and exact.meta["cache"]["calibration"]["augmented_duplicate"]["state"] == "computed"
    assert _summary(exact) == _summary(_audit(grown))


def test_every_earlier_training_sample_must_still_be_there_counted_with_repeats():
    """The growth rule compares digest multisets: a removed repeat of a sample is a removal."""
    from leakguard.similarity.memo import _digest_multiset, contains_all

    a, b, c = b"a" * 16, b"b" * 16, b"c" * 16
    earlier = _digest_multiset([a, a, b])
    assert contains_all(_digest_multiset([b, a, c, a]), earlier)        # grew, order free
    assert not contains_all(_digest_multiset([a, b, c]), earlier)       # one of the two a's left
    assert not contains_all(_digest_multiset([a, a]), earlier)
    assert contains_all(_digest_multiset([a, a, b]), earlier)


def test_scene_links_are_read_back_and_a_grown_dataset_verifies_only_new_pairs(tmp_path):
    """group_overlap's scene links (frames of one panning camera) through the cache: a re-audit reads
    every candidate pair's verdict back, one with more frames verifies only pairs it has not seen,
    and the findings are those of an audit without a cache."""
    from skimage import data as skdata

    camera, other = skdata.camera()[100:300, 100:400], skdata.moon()[100:300, 100:400]
    frames = [camera[:128, 5 * k:5 * k + 128] for k in range(12)]
    strangers = [other[:128, 5 * k:5 * k + 128] for k in range(0, 12, 2)]
    first = {"train": frames[0:8:2], "val": frames[1:8:2] + strangers[:3]}
    grown = {"train": frames[0:12:2], "val": frames[1:12:2] + strangers}

    def run(splits, cache_dir=None):
        return lg.audit(splits, modality="image", checks=["group_overlap"],
                        config=lg.AuditConfig(cache_dir=cache_dir, progress=False))

    def links(report):
        return [(f.check, f.title, f.detail, repr(sorted(f.extra.items(), key=lambda kv: kv[0])),
                 f.pairs.to_dict("records") if f.pairs is not None else None) for f in report.findings]

    cold = run(first, tmp_path)
    counted = cold.meta["cache"]["pairs"]["groups/scene"]
    assert counted["computed"] > 0 and counted["read_back"] == 0
    assert any((f.extra.get("scene_links") or 0) > 0 for f in cold.findings)     # the frames were linked
    warm = run(first, tmp_path)
    assert warm.meta["cache"]["pairs"]["groups/scene"] == {"computed": 0, "read_back": counted["computed"]}
    assert links(warm) == links(cold) == links(run(first))
    more = run(grown, tmp_path)
    again = more.meta["cache"]["pairs"]["groups/scene"]
    assert again["read_back"] > 0 and 0 < again["computed"] < counted["computed"] + again["read_back"]
    assert links(more) == links(run(grown))


def test_grown_text_training_split_searches_old_evaluation_texts_in_its_added_texts_only(tmp_path):
    """With the TF-IDF fit kept (training split +2 %), each earlier evaluation text's nearest training
    text is searched among the added training texts only and merged with the kept one: the findings
    equal those of the same audit searching every evaluation text in full (the kept rows deleted)."""
    import shutil

    from leakguard.similarity.synthetic import augment_text, paraphrase, prose_corpus

    corpus = prose_corpus()
    rng = np.random.default_rng(11)
    train, spare = corpus[:200], corpus[200:260]
    added = spare[20:24]                                              # +2 %: the fit is kept
    # the last one: a rewording of a text that joins the training split later (its nearest text changes)
    val = [paraphrase(train[i], rng) for i in (3, 40, 77, 120)] + spare[:20] + [paraphrase(added[2], rng)]
    new_val = [paraphrase(added[0], rng), augment_text(added[1], rng, "combined", 0.1), paraphrase(train[9], rng)]

    def run(splits, cache_dir):
        return lg.audit(splits, modality="text", checks=["semantic_duplicate"],
                        config=lg.AuditConfig(cache_dir=cache_dir, progress=False))

    run({"train": train, "val": val}, tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    with sqlite3.connect(tmp_path / "b" / "signatures.sqlite") as db:   # b: no kept rows, full search
        assert db.execute("DELETE FROM sig WHERE kind LIKE 'memo/rows/%'").rowcount == len(val)
    grown = {"train": train + added, "val": val + new_val}
    import leakguard.similarity.text as text_backend

    embedded: list[str] = []
    real_embed = text_backend._embed
    text_backend._embed = lambda embedder, texts, what: embedded.extend(texts) or real_embed(embedder, texts, what)
    try:
        merged = run(grown, tmp_path / "a")
    finally:
        text_backend._embed = real_embed
    # each new text is embedded once: the added training texts' vectors, written for the training
    # matrix, are read back (not yet flushed) when the earlier evaluation texts are searched in them
    assert sorted(embedded) == sorted(added + new_val)
    full = run(grown, tmp_path / "b")
    assert merged.meta["cache"]["calibration"]["semantic_duplicate"]["state"] == "kept"
    counts = merged.meta["cache"]["pairs"]["text/semantic/nearest"]
    assert counts["searched_in_added_only"] == len(val)
    assert "searched_in_added_only" not in full.meta["cache"]["pairs"]["text/semantic/nearest"]
    assert _summary(merged) == _summary(full)
    leaked = set(merged.leaked("val", check="semantic_duplicate").tolist())
    assert len(val) in leaked and {0, 1, 2, 3} & leaked            # the new text's rewording is found
    assert len(val) - 1 in leaked          # an earlier evaluation text found in the added training texts
    assert len(val) - 1 not in set(run({"train": train, "val": val}, None).leaked("val").tolist())
