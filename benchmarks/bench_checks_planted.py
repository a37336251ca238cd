"""Detection quality of group_overlap, temporal_overlap, preprocessing_contamination and
oversampling_leakage on planted leaks with known truth, and on the clean version of each case.

Data that ships in packages: scikit-learn's tabular sets, scikit-image photos cut into tiles and
panned into "videos", a seasonal time series. Each case is planted several times (seeds); for
each, recall and precision of the affected evaluation samples (``report.leaked(split, check)``)
or features (``finding.features``) against the truth, and the number of findings the check makes
on the clean version. Targets: recall and precision >= 0.95, no finding on the clean version. Then lg.resplit on
leaky versions, and the same check's cross-split findings on its output (target: none).

    .venv/bin/python benchmarks/bench_checks_planted.py [--seeds 3] [--json out.json] [--inference-cases]

Median imputation judged from the data alone varies from seed to seed: its figure is taken over 20
seeds (``--seeds 20 --only impute_median``, about a minute), and bench_median_fill_ceiling.py
scores the same cases for the exact posterior with the planting's own parameters (the ceiling).
"""
from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import pandas as pd

CFG = None


def _cfg():
    global CFG
    if CFG is None:
        import leakguard as lg

        CFG = lg.AuditConfig(progress=False)
    return CFG


def _pr(got, truth) -> tuple[float, float]:
    got, truth = set(map(int, got)) if not isinstance(got, set) else got, set(truth)
    tp = len(got & truth)
    recall = tp / len(truth) if truth else 1.0
    precision = tp / len(got) if got else (1.0 if not truth else 0.0)
    return recall, precision


def _audit(splits, check, **kw):
    import leakguard as lg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lg.audit(splits, config=kw.pop("config", _cfg()), checks=kw.pop("checks", [check]), **kw)


def _own(report, check):
    return [f for f in report.findings if f.check == check]


# ---------------------------------------------------------------------------- data
def _tabular(name):
    from sklearn import datasets

    if name == "diabetes":
        X, y = datasets.load_diabetes(return_X_y=True, as_frame=True, scaled=False)
        y = (y > y.median()).astype(int)
    else:
        X, y = getattr(datasets, f"load_{name}")(return_X_y=True, as_frame=True)
    return X.reset_index(drop=True), y.reset_index(drop=True)


def _tiles(size=48):
    """Tiles of scikit-image photos; the photo is the group."""
    from skimage import data
    from skimage.color import gray2rgb

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.camera(),
              data.immunohistochemistry(), data.hubble_deep_field(), data.retina()]
    tiles, group = [], []
    for g, ph in enumerate(photos):
        ph = gray2rgb(ph) if ph.ndim == 2 else ph[..., :3]
        for y in range(0, ph.shape[0] - size + 1, size * 2):
            for x in range(0, ph.shape[1] - size + 1, size * 2):
                tiles.append(ph[y:y + size, x:x + size])
                group.append(g)
    return np.stack(tiles).astype(np.uint8), np.asarray(group)


def _videos(n_videos=12, frames=20, size=32):
    """"Videos": a crop window panning over a scikit-image photo, one frame every 0.04 s."""
    from skimage import data
    from skimage.color import rgb2gray

    photos = [rgb2gray(data.astronaut()), data.camera() / 255.0, rgb2gray(data.coffee()),
              rgb2gray(data.chelsea())]
    rng = np.random.default_rng(0)
    X, vid, t = [], [], []
    for v in range(n_videos):
        ph = photos[v % len(photos)]
        y0, x0 = rng.integers(0, ph.shape[0] - size - frames * 2), rng.integers(0, ph.shape[1] - size - frames * 2)
        start = 3600.0 * v
        for f in range(frames):
            X.append(ph[y0 + f:y0 + f + size, x0 + 2 * f:x0 + 2 * f + size].ravel())
            vid.append(f"video{v:02d}")
            t.append(start + f / 25.0)
    return np.asarray(X), np.asarray(vid), np.asarray(t)


def _series_windows(n=600, width=12, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n + width)
    noise = np.zeros(len(t))
    for i in range(1, len(t)):
        noise[i] = 0.7 * noise[i - 1] + 0.3 * rng.normal()
    y = np.sin(2 * np.pi * t / 48) + 0.5 * np.sin(2 * np.pi * t / 336) + noise
    X = np.stack([y[i:i + width] for i in range(n)])
    stamps = pd.Timestamp("2022-01-01") + pd.to_timedelta(np.arange(n) + width, unit="h")
    return pd.DataFrame(X, columns=[f"lag{k}" for k in range(width)]), stamps


# ---------------------------------------------------------------------------- cases
def case_group_given_tabular(seed):
    """Patients: rows of breast_cancer grouped into 'patients' of 4; 10% of patients split across."""
    X, y = _tabular("breast_cancer")
    rng = np.random.default_rng(seed)
    pid = rng.permutation(np.repeat(np.arange(len(X) // 4 + 1), 4)[:len(X)])
    patients = np.unique(pid)
    test_p = rng.choice(patients, len(patients) // 5, replace=False)
    te = np.isin(pid, test_p)
    clean = {"train": X[~te].assign(pid=pid[~te]), "test": X[te].assign(pid=pid[te])}
    # plant: 10% of training patients send one sample to test
    train_p = np.setdiff1d(patients, test_p)
    planted = rng.choice(train_p, len(train_p) // 10, replace=False)
    move = np.asarray([np.flatnonzero((pid == p) & ~te)[0] for p in planted])
    te2 = te.copy()
    te2[move] = True
    leaky = {"train": X[~te2].assign(pid=pid[~te2]), "test": X[te2].assign(pid=pid[te2])}
    truth = np.flatnonzero(np.isin(pid[te2], planted))
    rep = _audit(leaky, "group_overlap", groups="pid")
    rep0 = _audit(clean, "group_overlap", groups="pid")
    return _pr(rep.leaked("test", check="group_overlap"), truth), len(_own(rep0, "group_overlap"))


def case_group_given_tiles(seed):
    """Tiles of 8 photos; a random tile split puts every photo on both sides, a photo split none."""
    tiles, group = _tiles()
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(tiles))
    tr, te = perm[:int(0.75 * len(perm))], perm[int(0.75 * len(perm)):]
    leaky = {"train": tiles[tr], "test": tiles[te]}
    groups = {"train": group[tr], "test": group[te]}
    truth = np.flatnonzero(np.isin(group[te], group[tr]))
    rep = _audit(leaky, "group_overlap", groups=groups)
    test_photos = rng.choice(8, 2, replace=False)
    c = np.isin(group, test_photos)
    rep0 = _audit({"train": tiles[~c], "test": tiles[c]}, "group_overlap",
                  groups={"train": group[~c], "test": group[c]})
    return _pr(rep.leaked("test", check="group_overlap"), truth), len(_own(rep0, "group_overlap"))


def case_group_inconsistent(seed):
    """Wine rows duplicated under a second id (the same patient recorded twice)."""
    X, y = _tabular("wine")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(X))
    tr, te = perm[:130], perm[130:]
    ids = np.asarray([f"id{i}" for i in range(len(X))], dtype=object)
    alias = rng.choice(tr, 8, replace=False)
    train = X.iloc[tr].assign(pid=ids[tr]).reset_index(drop=True)
    extra = X.iloc[alias].assign(pid=[f"alias-{i}" for i in alias])
    test = pd.concat([X.iloc[te].assign(pid=ids[te]), extra], ignore_index=True)
    truth = set(range(len(te), len(te) + len(alias)))
    rep = _audit({"train": train, "test": test}, "group_overlap", groups="pid",
                 checks=["exact_duplicate", "group_overlap"])
    inc = [f for f in _own(rep, "group_overlap") if f.extra.get("kind") == "inconsistent"]
    got = set(inc[0].pairs.index_b.tolist()) if inc else set()
    rep0 = _audit({"train": train, "test": X.iloc[te].assign(pid=ids[te]).reset_index(drop=True)}, "group_overlap",
                  groups="pid", checks=["exact_duplicate", "group_overlap"])
    return _pr(got, truth), len(_own(rep0, "group_overlap"))


def case_group_inferred_frames(seed):
    """No ids: frames of panned-photo "videos" (images), consecutive frames a 1-2 pixel pan apart.
    The image similarity checks link neighbouring frames; group_overlap joins the links into
    videos. Truth: test frames of videos that have frames in train. Needs an image similarity
    backend (skipped when none is installed)."""
    from leakguard.checks.similarity import BACKENDS, load_backends

    load_backends()
    if not any(m == "image" for _, m in BACKENDS):
        return None
    X, vid, t = _videos(n_videos=10, frames=12, size=48)
    frames = (np.clip(X, 0, 1) * 255).astype(np.uint8).reshape(len(X), 48, 48)
    rng = np.random.default_rng(seed)
    videos = np.unique(vid)
    # 4 videos cut across the split frame by frame, the rest kept whole
    cut = rng.choice(videos, 4, replace=False)
    whole_test = rng.choice(np.setdiff1d(videos, cut), 2, replace=False)
    in_test = np.isin(vid, whole_test) | (np.isin(vid, cut) & (rng.random(len(vid)) < 0.3))
    leaky = {"train": frames[~in_test], "test": frames[in_test]}
    rep = _audit(leaky, "group_overlap", checks=None, modality="image")
    truth = np.flatnonzero(np.isin(vid[in_test], vid[~in_test]))
    clean = np.isin(vid, whole_test)
    rep0 = _audit({"train": frames[~clean], "test": frames[clean]}, "group_overlap", checks=None, modality="image")
    # the leak found by all checks together: direct links plus the chains group_overlap adds
    return _pr(rep.leaked("test"), truth), len(_own(rep0, "group_overlap"))


def _articles(n_articles=12, min_sentences=10):
    """Long docstrings of numpy, scipy and scikit-learn functions: real prose that ships in packages."""
    import re

    import numpy
    import scipy.linalg
    import scipy.signal
    import sklearn.metrics
    import sklearn.model_selection

    docs, seen = [], set()
    for mod in (numpy, scipy.linalg, sklearn.model_selection, scipy.signal, sklearn.metrics):
        for name in sorted(dir(mod)):
            obj = getattr(mod, name, None)
            if name.startswith("_") or not callable(obj) or isinstance(obj, type(numpy)):
                continue
            # the prose before the Parameters section: no shared boilerplate between articles
            doc = (getattr(obj, "__doc__", None) or "").split("Parameters\n")[0]
            text = " ".join(doc.split())
            if text in seen:
                continue
            seen.add(text)
            docs.append([x for x in re.split(r"(?<=[.!?])\s+", text) if len(x.split()) >= 6])
    # a sentence found in two docstrings is the library's boilerplate (scipy.linalg's note on
    # "core" shapes and batch dimensions), not the article's: it would tie articles together
    from collections import Counter

    count = Counter(x for sents in docs for x in set(sents))
    arts, held = [], set()
    for sents in docs:
        kept = [x for x in sents if count[x] == 1]
        # nor a shared run of 8 words inside sentences (sklearn's F1 / F-beta / precision-recall
        # docstrings share whole clauses): the articles must share no passage by themselves
        words = re.sub(r"[^\w\s]", " ", " ".join(kept).lower()).split()
        grams = {tuple(words[i:i + 8]) for i in range(len(words) - 7)}
        if len(kept) >= min_sentences and not grams & held:
            arts.append(kept)
            held |= grams
    return arts[:n_articles]


def case_group_inferred_chunks(seed):
    """No ids: articles cut into overlapping chunks (4 sentences, stride 2), as for retrieval or LM
    training. Neighbouring chunks share a passage (partial_duplicate links them); chunks further
    apart share nothing, so only the chain ties them to their article. Truth: test chunks of
    articles that have chunks in train."""
    from leakguard.checks.similarity import BACKENDS, load_backends

    load_backends()
    if ("partial_duplicate", "text") not in BACKENDS:
        return None
    chunks, art = [], []
    for a, sents in enumerate(_articles()):
        for i in range(0, len(sents) - 3, 2):
            chunks.append(" ".join(sents[i:i + 4]))
            art.append(a)
    chunks, art = np.asarray(chunks, dtype=object), np.asarray(art)
    rng = np.random.default_rng(seed)
    arts = np.unique(art)
    cut = rng.choice(arts, 4, replace=False)
    whole = rng.choice(np.setdiff1d(arts, cut), 2, replace=False)
    in_test = np.isin(art, whole) | (np.isin(art, cut) & (rng.random(len(art)) < 0.4))
    checks = ["exact_duplicate", "partial_duplicate", "group_overlap"]
    rep = _audit({"train": list(chunks[~in_test]), "test": list(chunks[in_test])}, "group_overlap", checks=checks)
    truth = np.flatnonzero(np.isin(art[in_test], art[~in_test]))
    clean = np.isin(art, whole)
    rep0 = _audit({"train": list(chunks[~clean]), "test": list(chunks[clean])}, "group_overlap", checks=checks)
    return _pr(rep.leaked("test"), truth), len(_own(rep0, "group_overlap"))


def case_temporal_global(seed):
    X, stamps = _series_windows(seed=seed)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(X))
    tr, te = perm[:480], perm[480:]
    day = np.asarray(stamps)
    leaky = {"train": X.iloc[tr], "test": X.iloc[te]}
    times = {"train": day[tr], "test": day[te]}
    truth = np.flatnonzero(day[te] < day[tr].max())
    rep = _audit(leaky, "temporal_overlap", timestamps=times)
    rep0 = _audit({"train": X.iloc[:480], "test": X.iloc[480:]}, "temporal_overlap",
                  timestamps={"train": day[:480], "test": day[480:]})
    return _pr(rep.leaked("test", check="temporal_overlap"), truth), len(_own(rep0, "temporal_overlap"))


def case_temporal_videos(seed):
    X, vid, t = _videos()
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(X))
    tr, te = perm[:180], perm[180:]
    rep = _audit({"train": X[tr], "test": X[te]}, "temporal_overlap", groups={"train": vid[tr], "test": vid[te]},
                 timestamps={"train": t[tr], "test": t[te]}, modality="tabular")
    truth = np.flatnonzero(np.isin(vid[te], vid[tr]))
    test_v = rng.choice(np.unique(vid), 3, replace=False)
    c = np.isin(vid, test_v)
    rep0 = _audit({"train": X[~c], "test": X[c]}, "temporal_overlap", groups={"train": vid[~c], "test": vid[c]},
                  timestamps={"train": t[~c], "test": t[c]}, modality="tabular")
    return _pr(rep.leaked("test", check="temporal_overlap"), truth), len(_own(rep0, "temporal_overlap"))


def case_temporal_file_names(tmp, seed):
    from PIL import Image

    tiles, _ = _tiles(size=24)
    rng = np.random.default_rng(seed)
    days = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.permutation(120) * 6, unit="h")
    paths = []
    for i, d in enumerate(days):
        p = tmp / f"s{seed}_cam_{d:%Y-%m-%d_%H-%M-%S}.png"
        Image.fromarray(tiles[i % len(tiles)]).save(p)
        paths.append(p)
    order = np.argsort(days.to_numpy())
    perm = rng.permutation(120)
    tr, te = perm[:90], perm[90:]
    rep = _audit({"train": [paths[i] for i in tr], "test": [paths[i] for i in te]}, "temporal_overlap")
    d = days.to_numpy()
    truth = np.flatnonzero(d[te] < d[tr].max())
    rep0 = _audit({"train": [paths[i] for i in order[:90]], "test": [paths[i] for i in order[90:]]},
                  "temporal_overlap")
    return _pr(rep.leaked("test", check="temporal_overlap"), truth), len(_own(rep0, "temporal_overlap"))


def _transforms():
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

    return {"standard": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler,
            "impute_mean": lambda: SimpleImputer(strategy="mean"),
            "impute_median": lambda: SimpleImputer(strategy="median")}


def case_preprocessing(dataset, kind, seed):
    X, y = _tabular(dataset)
    X = X.astype(float)
    rng = np.random.default_rng(seed)
    if kind.startswith("impute"):
        X = X.mask(rng.random(X.shape) < 0.08)
    perm = rng.permutation(len(X))
    cut = int(0.8 * len(X))
    tr, te = perm[:cut], perm[cut:]
    make = _transforms()[kind]
    union_fit, train_fit = make().fit(X), make().fit(X.iloc[tr])
    leaky = pd.DataFrame(union_fit.transform(X), columns=X.columns)
    clean = pd.DataFrame(train_fit.transform(X), columns=X.columns)
    # truth: the features whose union fit differs from the train fit (the others are not contaminated:
    # both fits give the same numbers)
    attrs = {"standard": ["mean_", "scale_"], "minmax": ["data_min_", "data_max_"], "robust": ["center_", "scale_"],
             "impute_mean": ["statistics_"], "impute_median": ["statistics_"]}[kind]
    differ = np.zeros(X.shape[1], dtype=bool)
    for a in attrs:
        differ |= ~np.isclose(getattr(union_fit, a), getattr(train_fit, a), rtol=1e-9, atol=0)
    truth = set(X.columns[differ])
    rep = _audit({"train": leaky.iloc[tr], "test": leaky.iloc[te]}, "preprocessing_contamination")
    got = set(sum([f.features or [] for f in _own(rep, "preprocessing_contamination")], []))
    rep0 = _audit({"train": clean.iloc[tr], "test": clean.iloc[te]}, "preprocessing_contamination")
    return _pr(got, truth), len(_own(rep0, "preprocessing_contamination")), len(truth)


def case_fitted_pipeline(dataset, seed):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _tabular(dataset)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(X))
    cut = int(0.8 * len(X))
    tr, te = perm[:cut], perm[cut:]
    splits = {"train": X.iloc[tr], "test": X.iloc[te]}
    leaky = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, y)
    clean = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X.iloc[tr], y.iloc[tr])
    rep = _audit(splits, "preprocessing_contamination", fitted=[leaky])
    rep0 = _audit(splits, "preprocessing_contamination", fitted=[clean])
    got = set(sum([f.features or [] for f in _own(rep, "preprocessing_contamination")], []))
    truth = set(X.columns[~np.isclose(leaky[0].mean_, clean[0].mean_, rtol=1e-9, atol=0)])
    return _pr(got, truth), len(_own(rep0, "preprocessing_contamination")), len(truth)


def _smote_truth(X0, y0, Xs, ys, tr, te):
    """Evaluation samples tied to train by a (synthetic, parent) pair, parents by brute force."""
    X = np.asarray(Xs, dtype=float)
    ys = np.asarray(ys)
    orig, yo = np.asarray(X0, dtype=float), np.asarray(y0)
    n = len(orig)
    where = np.empty(len(X), dtype=object)
    where[tr] = [("train", i) for i in range(len(tr))]
    where[te] = [("test", i) for i in range(len(te))]
    truth = set()
    for s in range(n, len(X)):
        same = np.flatnonzero(yo == ys[s])
        i, j = np.triu_indices(len(same), 1)
        A, B = orig[same[i]], orig[same[j]]
        D = B - A
        dd = (D ** 2).sum(axis=1)
        ok = dd > 0
        lam = np.where(ok, ((X[s] - A) * D).sum(axis=1) / np.where(ok, dd, 1), -1)
        res = np.linalg.norm(X[s] - A - lam[:, None] * D, axis=1) / np.sqrt(np.where(ok, dd, 1))
        # interpolation (0 < lambda < 1) or SVM-SMOTE's extrapolation past a parent (lambda < 0 or > 1)
        hit = np.flatnonzero(ok & (lam > -1) & (lam < 2) & (np.abs(lam) > 1e-9) & (np.abs(lam - 1) > 1e-9)
                             & (res <= 1e-6))
        if not len(hit):
            continue
        parents = (same[i[hit[0]]], same[j[hit[0]]])
        if where[s][0] == "test" and any(where[p][0] == "train" for p in parents):
            truth.add(where[s][1])
        if where[s][0] == "train":
            truth.update(where[p][1] for p in parents if where[p][0] == "test")
    return truth


def case_oversampling(dataset, sampler_name, seed):
    from imblearn.over_sampling import ADASYN, SMOTE, SVMSMOTE, BorderlineSMOTE, RandomOverSampler

    X, y = _tabular(dataset)
    rng = np.random.default_rng(seed)
    # a real minority: keep a quarter of the smallest class
    counts = y.value_counts()
    minority = counts.index[-1]
    idx_min = np.flatnonzero(y == minority)
    keep = np.sort(np.concatenate([np.flatnonzero(y != minority),
                                   rng.choice(idx_min, max(12, len(idx_min) // 4), replace=False)]))
    X, y = X.iloc[keep].reset_index(drop=True).astype(float), y.iloc[keep].reset_index(drop=True)
    sampler = {"smote": SMOTE, "borderline": BorderlineSMOTE, "svmsmote": SVMSMOTE, "adasyn": ADASYN,
               "random": RandomOverSampler}[sampler_name](random_state=seed)
    Xs, ys = sampler.fit_resample(X, y)
    perm = rng.permutation(len(Xs))
    cut = int(0.8 * len(Xs))
    tr, te = perm[:cut], perm[cut:]
    leaky = {"train": Xs.iloc[tr].reset_index(drop=True), "test": Xs.iloc[te].reset_index(drop=True)}
    labels = {"train": np.asarray(ys)[tr], "test": np.asarray(ys)[te]}
    if sampler_name == "random":
        # the data sets hold no duplicate rows: every test row equal to a training row is a copy the
        # sampler made (of any class it oversampled)
        train_rows = set(map(tuple, leaky["train"].to_numpy()))
        truth = {i for i, row in enumerate(leaky["test"].to_numpy()) if tuple(row) in train_rows}
    else:
        truth = _smote_truth(X, y, Xs, ys, tr, te)
    rep = _audit(leaky, "oversampling_leakage", labels=labels)
    # clean: split first, oversample the training split only
    p0 = rng.permutation(len(X))
    c = int(0.8 * len(X))
    try:
        Xt, yt = sampler.fit_resample(X.iloc[p0[:c]], y.iloc[p0[:c]])
    except ValueError:  # ADASYN finds nothing to generate on some small training splits
        Xt, yt = X.iloc[p0[:c]], y.iloc[p0[:c]]
    rep0 = _audit({"train": Xt, "test": X.iloc[p0[c:]]}, "oversampling_leakage",
                  labels={"train": np.asarray(yt), "test": y.iloc[p0[c:]].to_numpy()})
    return (_pr(rep.leaked("test", check="oversampling_leakage"), truth), len(_own(rep0, "oversampling_leakage")),
            len(truth))


def resplit_cases(seed) -> list[dict]:
    """lg.resplit on leaky versions: the same check's cross-split findings after the re-split."""
    import leakguard as lg
    from imblearn.over_sampling import SMOTE, RandomOverSampler

    out = []
    rng = np.random.default_rng(seed)

    def after(name, splits, report, check, kw_split, kw_audit):
        new = lg.resplit(splits, report, **kw_split)
        rep = _audit(new, check, **kw_audit(new))
        cross = [f for f in _own(rep, check) if f.cross_split]
        out.append({"case": name, "cross_findings_after": len(cross), "moved": new.moved,
                    "n": int(sum(len(v) for v in new.values()))})

    # groups: breast_cancer patients with planted crossing patients
    X, y = _tabular("breast_cancer")
    pid = rng.permutation(np.repeat(np.arange(len(X) // 4 + 1), 4)[:len(X)])
    te = rng.random(len(X)) < 0.2
    splits = {"train": X[~te].assign(pid=pid[~te], y=y[~te]), "test": X[te].assign(pid=pid[te], y=y[te])}
    rep = _audit(splits, "group_overlap", groups="pid", labels="y")
    after("group_overlap: random row split of patients", splits, rep, "group_overlap",
          dict(groups="pid", labels="y"), lambda new: dict(groups="pid", labels="y"))
    # time: random split of series windows -> rolling origin
    Xw, stamps = _series_windows(seed=seed)
    day = np.asarray(stamps)
    perm = rng.permutation(len(Xw))
    splits = {"train": Xw.iloc[perm[:480]].assign(day=day[perm[:480]]), "test": Xw.iloc[perm[480:]].assign(day=day[perm[480:]])}
    rep = _audit(splits, "temporal_overlap", timestamps="day")
    after("temporal_overlap: random split of a series", splits, rep, "temporal_overlap",
          dict(timestamps="day", time_order=True), lambda new: dict(timestamps="day"))
    # oversampling: SMOTE and random oversampling before the split
    Xc, yc = _tabular("breast_cancer")
    keep = np.sort(np.concatenate([np.flatnonzero(yc == 1), rng.choice(np.flatnonzero(yc == 0), 60, replace=False)]))
    Xc, yc = Xc.iloc[keep].reset_index(drop=True), yc.iloc[keep].reset_index(drop=True)
    for name, sampler in (("SMOTE", SMOTE(random_state=seed)), ("random", RandomOverSampler(random_state=seed))):
        Xs, ys = sampler.fit_resample(Xc, yc)
        perm = rng.permutation(len(Xs))
        cut = int(0.8 * len(Xs))
        splits = {"train": Xs.iloc[perm[:cut]].reset_index(drop=True), "test": Xs.iloc[perm[cut:]].reset_index(drop=True)}
        labels = {"train": np.asarray(ys)[perm[:cut]], "test": np.asarray(ys)[perm[cut:]]}
        checks = ["exact_duplicate", "oversampling_leakage"]
        rep = _audit(splits, "oversampling_leakage", labels=labels, checks=checks)
        after(f"oversampling_leakage: {name} before the split", splits, rep, "oversampling_leakage",
              dict(labels=labels), lambda new: dict(labels=new.labels, checks=checks))
    return out


# ---------------------------------------------------------------------------- main
def main() -> None:
    import tempfile
    from pathlib import Path

    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--json", default=None)
    ap.add_argument("--inference-cases", action="store_true",
                    help="also groups inferred from similarity links (text chunks, image frames: minutes per seed)")
    ap.add_argument("--only", default=None,
                    help="run only the cases whose 'check case' text contains this (e.g. 'inferred', 'impute_median')")
    args = ap.parse_args()
    if args.only and "inferred" in args.only:
        args.inference_cases = True
    rows = []

    def record(check, case, fn, *a):
        if args.only and args.only not in f"{check} {case}":
            return
        rec, prec, clean, n_truth = [], [], 0, 0
        t = time.perf_counter()
        for seed in range(args.seeds):
            out = fn(*a, seed)
            if out is None:
                rows.append({"check": check, "case": case, "skipped": True})
                print(f"{check:28s} {case:38s} skipped (backend missing)")
                return
            (r, p), c = out[0], out[1]
            n_truth += out[2] if len(out) > 2 else 0
            rec.append(r)
            prec.append(p)
            clean += c
        row = {"check": check, "case": case, "recall": float(np.mean(rec)), "precision": float(np.mean(prec)),
               "min_recall": float(np.min(rec)), "min_precision": float(np.min(prec)),
               "clean_findings": clean, "seeds": args.seeds, "seconds": round(time.perf_counter() - t, 1)}
        rows.append(row)
        ok = row["min_recall"] >= 0.95 and row["min_precision"] >= 0.95 and clean == 0
        print(f"{check:28s} {case:38s} recall {row['recall']:.3f} (min {row['min_recall']:.3f})  "
              f"precision {row['precision']:.3f} (min {row['min_precision']:.3f})  clean findings {clean}  "
              f"{'OK' if ok else 'BELOW TARGET'}", flush=True)

    record("group_overlap", "given ids, breast_cancer patients", case_group_given_tabular)
    record("group_overlap", "given ids, skimage photo tiles", case_group_given_tiles)
    record("group_overlap", "inconsistent ids, wine aliases", case_group_inconsistent)
    if args.inference_cases:
        # these measure the similarity backends' links as much as the grouping: see the note
        record("group_overlap", "inferred (no ids), overlapping text chunks", case_group_inferred_chunks)
        record("group_overlap", "inferred (no ids), panned-photo video frames", case_group_inferred_frames)
    record("temporal_overlap", "global, seasonal series windows", case_temporal_global)
    record("temporal_overlap", "within group, panned-photo videos", case_temporal_videos)
    with tempfile.TemporaryDirectory() as tmp:
        record("temporal_overlap", "global, dates in file names", case_temporal_file_names, Path(tmp))
    for ds in ("breast_cancer", "wine", "diabetes"):
        for kind in _transforms():
            record("preprocessing_contamination", f"{kind}, {ds}", case_preprocessing, ds, kind)
        record("preprocessing_contamination", f"fitted pipeline, {ds}", case_fitted_pipeline, ds)
    for ds in ("breast_cancer", "wine"):
        for s in ("smote", "borderline", "svmsmote", "adasyn", "random"):
            record("oversampling_leakage", f"{s}, {ds}", case_oversampling, ds, s)
    for seed in range(args.seeds if not args.only or "resplit" in args.only else 0):
        for r in resplit_cases(seed):
            rows.append({"check": "resplit", "seed": seed, **r})
            print(f"{'resplit':28s} {r['case']:50s} seed {seed}: cross-split findings after {r['cross_findings_after']}, "
                  f"moved {r['moved']} of {r['n']}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
