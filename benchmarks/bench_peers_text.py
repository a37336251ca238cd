"""Text near-duplicates: leakguard against the real peers, on the same texts, in the same run.

Data: ``bench_text_similarity._planted_case`` (imported, not copied): 500 training paragraphs of
real prose (stdlib docstrings), 150 clean evaluation paragraphs (30 % of all texts carry one
boilerplate licence sentence: the hard negatives) and 30 planted copies of training texts per
augmentation family (typos, dropped / added / swapped words, case, punctuation, whitespace, a
combination, a lexical paraphrase, a shared 20-word passage in a new text). One case per family
and seed; every method sees the same case.

Methods, end to end from the raw strings to flagged evaluation texts (imports before the clock):

- ``leakguard``: ``lg.audit`` with the exact, augmented, partial and semantic duplicate checks.
- ``deepchecks``: ``TrainTestSamplesMix`` (deepchecks.nlp): normalised text (case, punctuation,
  unicode) hashed and matched exactly. ``remove_stopwords=False``: offline its stop-word list
  cannot be downloaded, so it skips that step anyway (after a failed download per text, which
  would only slow it down).
- ``cleanlab``: ``Datalab.find_issues(features=..., issue_types={"near_duplicate": {}})`` on TF-IDF
  vectors (word 1-2-grams, fitted on both splits), the features a user without a sentence model
  gives it; an evaluation text is flagged when its near-duplicate set holds a training text.
- ``datasketch``: ``MinHashLSH(threshold=0.5)`` over leakguard's normalised character shingles
  (``bench_text_similarity._datasketch_flags``).

Recall = planted copies flagged / planted; precision = planted flagged / all flagged (clean
texts flagged are false positives). ``--speed``: ``--train`` x ``--eval`` texts from a word-bigram
model of the prose with 5 % planted "combined" copies; seconds per method and ratios.

    .venv/bin/python benchmarks/bench_peers_text.py                 # 10 families x 1 seed, a few minutes
    .venv/bin/python benchmarks/bench_peers_text.py --seeds 2 --speed --train 5000 --eval 1000
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _bench_text_similarity():
    """Builders of ``bench_text_similarity.py`` (benchmarks/ is no package)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import bench_text_similarity

    return bench_text_similarity


def import_deepchecks_nlp():
    """deepchecks.nlp on this environment: two shims for what newer libraries removed.

    deepchecks 0.19.1 imports ``pkg_resources`` (gone from setuptools >= 81) for ``parse_version``
    and reads scikit-learn's ``max_error`` scorer (gone from scikit-learn 1.9) while importing.
    Neither is used by TrainTestSamplesMix.
    """
    import types

    if "pkg_resources" not in sys.modules:
        try:
            import pkg_resources  # noqa: F401
        except ImportError:
            from packaging.version import parse

            shim = types.ModuleType("pkg_resources")
            shim.parse_version = parse
            shim.working_set = []
            sys.modules["pkg_resources"] = shim
    from sklearn.metrics import _scorer, make_scorer, max_error

    _scorer._SCORERS.setdefault("max_error", make_scorer(max_error, greater_is_better=False))
    from deepchecks.nlp import TextData
    from deepchecks.nlp.checks import TrainTestSamplesMix

    return TextData, TrainTestSamplesMix


# --- methods: (train, val) -> set of flagged evaluation indices ------------------------------

def leakguard_flags(train, val):
    return _bench_text_similarity()._leakguard_flags(train, val)


def deepchecks_flags(train, val):
    TextData, TrainTestSamplesMix = import_deepchecks_nlp()
    result = TrainTestSamplesMix(remove_stopwords=False).run(TextData(raw_text=list(train)),
                                                             TextData(raw_text=list(val)))
    dups = result.value["duplicates"]
    if len(dups) == 0:
        return set()
    idx = dups.index.to_frame(index=False)
    return set(idx.loc[idx["Dataset"] == "test", "Sample ID"].astype(int).tolist())


def cleanlab_flags(train, val):
    import pandas as pd
    from cleanlab import Datalab
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = list(train) + list(val)
    x = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1).fit_transform(texts)
    if x.shape[0] * x.shape[1] > 50_000_000:  # Datalab wants dense features: reduce big corpora
        from sklearn.decomposition import TruncatedSVD

        x = TruncatedSVD(256, random_state=0).fit_transform(x)
    else:
        x = x.toarray()
    lab = Datalab(data=pd.DataFrame({"text": texts}), verbosity=0)
    lab.find_issues(features=np.asarray(x, dtype=np.float32), issue_types={"near_duplicate": {}})
    sets = lab.get_info("near_duplicate")["near_duplicate_sets"]
    n = len(train)
    return {row - n for row in range(n, len(texts)) if any(i < n for i in sets[row])}


def datasketch_flags(train, val):
    return _bench_text_similarity()._datasketch_flags(train, val)


METHODS = {"leakguard": leakguard_flags, "deepchecks": deepchecks_flags, "cleanlab": cleanlab_flags,
           "datasketch": datasketch_flags}
PEER_IMPORTS = {"deepchecks": import_deepchecks_nlp, "cleanlab": lambda: __import__("cleanlab.datalab.datalab"),
                "datasketch": lambda: __import__("datasketch")}


def available_methods(skip) -> dict:
    out = {}
    for name, fn in METHODS.items():
        if name in skip:
            continue
        if name in PEER_IMPORTS:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    PEER_IMPORTS[name]()
            except ImportError as err:
                print(f"{name}: not installed ({err}); pip install 'leakguard-ml[bench]'")
                continue
        out[name] = fn
    return out


def _timed(fn, train, val):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        flags = fn(train, val)
        return flags, time.perf_counter() - t


def quality(methods: dict, seeds: int) -> list[dict]:
    bts = _bench_text_similarity()
    from leakguard.similarity.synthetic import prose_corpus

    corpus = prose_corpus()
    rows = []
    for family in bts.FAMILIES:
        agg = {name: [] for name in methods}
        for seed in range(seeds):
            train, val, truth = bts._planted_case(corpus, family, seed)
            for name, fn in methods.items():
                flags, seconds = _timed(fn, train, val)
                agg[name].append((*bts._pr(flags, truth), seconds))
        row = {"family": family}
        for name, prs in agg.items():
            row[name] = {"recall": round(float(np.mean([p[0] for p in prs])), 3),
                         "precision": round(float(np.mean([p[1] for p in prs])), 3),
                         "seconds": round(float(np.mean([p[2] for p in prs])), 2)}
        rows.append(row)
        print(f"{family:12s} " + "  ".join(f"{n} R={row[n]['recall']:.3f} P={row[n]['precision']:.3f}"
                                           for n in methods), flush=True)
    return rows


def speed(methods: dict, n_train: int, n_eval: int) -> dict:
    bts = _bench_text_similarity()
    from leakguard.similarity.synthetic import augment_text, prose_corpus

    corpus = prose_corpus()
    train = bts._bigram_texts(n_train, 1, corpus)
    val = bts._bigram_texts(n_eval, 2, corpus)
    rng = np.random.default_rng(2)
    planted = rng.choice(n_eval, size=n_eval // 20, replace=False)
    for j in planted:
        val[j] = augment_text(train[int(rng.integers(n_train))], rng, "combined", 0.1)
    truth = set(planted.tolist())
    out = {"train": n_train, "eval": n_eval}
    for name, fn in methods.items():
        flags, seconds = _timed(fn, train, val)
        r, p = bts._pr(flags, truth)
        out[name] = {"seconds": round(seconds, 2), "recall": round(r, 3), "precision": round(p, 3)}
        print(f"speed {n_train} x {n_eval}: {name} {seconds:.1f} s, R={r:.3f} P={p:.3f}", flush=True)
    if "leakguard" in out:
        for name in methods:
            out[name]["x_leakguard"] = round(out[name]["seconds"] / out["leakguard"]["seconds"], 3)
    return out


def print_table(rows: list[dict], names: list[str]) -> None:
    print("\nper family: recall / precision (seconds per case)")
    print(f"{'family':12s}" + "".join(f"| {n:^20s}" for n in names))
    for row in rows:
        print(f"{row['family']:12s}" + "".join(
            f"| {row[n]['recall']:.2f} / {row[n]['precision']:.2f} ({row[n]['seconds']:5.1f})" for n in names))
    print(f"{'mean':12s}" + "".join(
        f"| {np.mean([r[n]['recall'] for r in rows]):.2f} / {np.mean([r[n]['precision'] for r in rows]):.2f} "
        f"({np.mean([r[n]['seconds'] for r in rows]):5.1f})" for n in names))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--skip", default="", help="comma-separated methods to leave out")
    ap.add_argument("--speed", action="store_true", help="also the speed run on bigram-model texts")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--train", type=int, default=5000)
    ap.add_argument("--eval", type=int, default=1000)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import leakguard  # noqa: F401 - imports before the clocks

    methods = available_methods({s.strip() for s in args.skip.split(",") if s.strip()})
    out = {}
    if not args.skip_quality:
        out["quality"] = quality(methods, args.seeds)
        print_table(out["quality"], list(methods))
    if args.speed:
        out["speed"] = speed(methods, args.train, args.eval)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
