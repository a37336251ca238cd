"""Before training: score every feature alone against the label, cross-validated.

A feature that predicts the label almost perfectly on its own, an identifier that tracks the
label, a column that is a deterministic function of the label (or of the label and one other
column), a free-text column that names the outcome, a missingness pattern that gives the label
away: each is screened here, ranked, and given its reason in plain words.

Cross-validation is what keeps high-cardinality columns honest: a unique identifier memorised on
the training folds knows nothing about the held-out fold, so it only scores if its *order* (or
prefix) carries the label.

>>> import numpy as np, pandas as pd
>>> from leakguard.explain.screening import FeatureScreen
>>> rng = np.random.default_rng(0)
>>> y = rng.integers(0, 2, 400)
>>> frame = pd.DataFrame({"noise": rng.normal(size=400), "leak": y + rng.normal(0, 0.05, 400)})
>>> table = FeatureScreen().fit(frame, y).table_
>>> table.iloc[0]["feature"], bool(table.iloc[0]["suspicious"])
('leak', True)
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

KINDS = ("numeric", "categorical", "text", "date", "identifier", "missingness")
_DATE_LIKE = re.compile(r"^\s*\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?")
_DIGITS = re.compile(r"\d+")


class FeatureScreen:
    """Score each feature alone against the label (cross-validated) and flag the suspicious ones.

    Parameters
    ----------
    cv : folds of the cross-validation.
    max_rows : rows used at most (a stratified random subsample beyond it), to bound the cost.
    near_perfect : skill at or above which a single feature "predicts the label almost perfectly".
        Skill is balanced accuracy rescaled so chance is 0 and perfect is 1 (classification), or
        cross-validated R^2 (regression).
    standout_skill, standout_margin : a feature with skill >= ``standout_skill`` that beats every
        other feature by ``standout_margin`` is flagged as a warning.
    identifier_skill : skill above which an identifier-like column counts as tracking the label.
    missing_skill : skill above which "is this value missing" counts as giving the label away.
    random_state : seed of the folds and the subsample.

    After :meth:`fit`, ``table_`` is a DataFrame ranked most suspicious first with columns
    feature, kind, skill, auc, suspicious, severity, reason.

    >>> FeatureScreen(cv=3).fit(frame, y).table_.head()   # doctest: +SKIP
    """

    def __init__(self, cv: int = 5, max_rows: int = 20000, near_perfect: float = 0.95,
                 standout_skill: float = 0.8, standout_margin: float = 0.3,
                 identifier_skill: float = 0.25, missing_skill: float = 0.5, random_state: int = 0):
        self.cv = cv
        self.max_rows = max_rows
        self.near_perfect = near_perfect
        self.standout_skill = standout_skill
        self.standout_margin = standout_margin
        self.identifier_skill = identifier_skill
        self.missing_skill = missing_skill
        self.random_state = random_state

    # ------------------------------------------------------------------ public
    def fit(self, frame, y, progress: bool | None = False) -> "FeatureScreen":
        """Screen every column of ``frame`` (DataFrame or 2-D array) against labels ``y``."""
        from tqdm.auto import tqdm

        frame = _as_frame(frame)
        y = np.asarray(y)
        if hasattr(y, "detach"):
            y = y.detach().cpu().numpy()
        if len(y) != len(frame):
            raise ValueError(f"labels have {len(y)} values but the features have {len(frame)} rows")
        keep = ~pd.isna(pd.Series(y)).to_numpy()
        frame, y = frame.loc[keep].reset_index(drop=True), y[keep]
        self.task_ = "classification" if _is_classification(y) else "regression"
        rng = np.random.default_rng(self.random_state)
        if len(y) > self.max_rows:
            rows = np.sort(rng.choice(len(y), self.max_rows, replace=False))
            frame, y = frame.iloc[rows].reset_index(drop=True), y[rows]
        self.n_rows_ = len(y)
        target, self.classes_ = self._encode_target(y)
        folds = self._folds(target)
        rows = []
        columns = list(frame.columns)
        bar = tqdm(columns, desc="leakguard: screening features", unit="feature",
                   disable=not progress if progress is not None else None, leave=False)
        for col in bar:
            rows.extend(self._screen_column(str(col), frame[col], target, folds))
        self._deterministic(frame, target, rows)
        table = pd.DataFrame(rows, columns=["feature", "kind", "skill", "auc", "suspicious", "severity",
                                            "reason", "detail"])
        self._flag_standout(table)
        order = table["severity"].map({"critical": 0, "warning": 1, "info": 2}).fillna(3)
        table = table.assign(_o=order, _s=-table["skill"].fillna(-1)).sort_values(["_o", "_s"], kind="stable")
        self.table_ = table.drop(columns=["_o", "_s"]).reset_index(drop=True)
        return self

    @property
    def flagged_(self) -> pd.DataFrame:
        return self.table_[self.table_["suspicious"]].reset_index(drop=True)

    # ------------------------------------------------------------------ parts
    def _encode_target(self, y):
        if self.task_ == "classification":
            classes, codes = np.unique(y.astype(str) if y.dtype.kind in "OUS" else y, return_inverse=True)
            return codes.astype(np.int64), classes
        return y.astype(np.float64), None

    def _folds(self, target):
        from sklearn.model_selection import KFold, StratifiedKFold

        if self.task_ == "classification":
            smallest = np.bincount(target).min()
            n_splits = int(max(2, min(self.cv, smallest)))
            if smallest >= 2:
                return list(StratifiedKFold(n_splits, shuffle=True, random_state=self.random_state)
                            .split(np.zeros(len(target)), target))
        return list(KFold(max(2, min(self.cv, len(target))), shuffle=True, random_state=self.random_state)
                    .split(np.zeros(len(target))))

    def _screen_column(self, name: str, values: pd.Series, target, folds) -> list[dict]:
        kind, prepared = column_kind(values)
        rows = []
        unique_ratio = values.nunique(dropna=True) / max(values.notna().sum(), 1)
        if kind == "constant":
            return [_row(name, "constant", np.nan, np.nan, "info", "", "the column holds one value", suspicious=False)]
        if kind == "text":
            oof = self._oof(lambda tr: _text_model(self.task_), prepared.fillna("").astype(str).to_numpy(),
                            target, folds, raw=True)
        elif kind == "categorical":
            oof = _target_encoding_oof(prepared, target, folds, self.task_, len(self.classes_) if self.classes_ is not None else 0)
        else:  # numeric, date, identifier parsed to numbers
            oof = self._oof(lambda tr: _tree_model(self.task_, len(tr)), prepared.to_numpy(np.float64)[:, None],
                            target, folds)
        skill, auc = self._skill(oof, target)
        identifier = _identifier_like(name, values, kind, unique_ratio)
        shown_kind = "identifier" if identifier else kind
        row = _row(name, shown_kind, skill, auc, "info", "", "", suspicious=False)
        what = self._metric_words(skill, auc)
        if skill >= self.near_perfect:
            row.update(suspicious=True, severity="critical",
                       reason=(f"alone it predicts the label almost perfectly ({what}, cross-validated)"
                               + (f"; {self._text_evidence(prepared, target)}" if kind == "text" else "")))
        elif identifier and skill >= self.identifier_skill:
            row.update(suspicious=True, severity="warning",
                       reason=(f"identifier-like column ({unique_ratio:.0%} distinct values) that tracks the "
                               f"label ({what}, cross-validated): rows were probably numbered or "
                               "keyed by outcome or by source"))
        elif kind == "text" and skill >= self.standout_skill:
            row.update(suspicious=True, severity="warning",
                       reason=f"free text that gives the label away ({what}); {self._text_evidence(prepared, target)}")
        rows.append(row)
        missing = values.isna().to_numpy()
        if kind != "text" and 0.01 <= missing.mean() <= 0.99:
            oof = self._oof(lambda tr: _tree_model(self.task_, len(tr)), missing[:, None].astype(np.float64),
                            target, folds)
            m_skill, m_auc = self._skill(oof, target)
            # the other direction too: missing *because of* the label (one class out of many
            # cannot be told apart by a yes/no column, but the label still decides the gap)
            m_skill = max(m_skill, _reverse_skill(missing, target) if self.task_ == "classification" else 0.0)
            mrow = _row(f"{name} (missing)", "missingness", m_skill, m_auc, "info", "", "", suspicious=False)
            if m_skill >= self.missing_skill:
                rates = self._missing_rates(missing, target)
                mrow.update(suspicious=True, severity="warning",
                            reason=(f"whether {name!r} is missing gives the label away ({rates}): the "
                                    "value is probably only recorded after (or because of) the outcome"))
            rows.append(mrow)
        return rows

    def _missing_rates(self, missing, target) -> str:
        if self.task_ != "classification":
            return f"missing in {missing.mean():.0%} of rows"
        parts = [f"{np.mean(missing[target == c]):.0%} of label {_plain(self.classes_[c])}"
                 for c in range(len(self.classes_)) if np.any(target == c)]
        return "missing in " + ", ".join(parts[:6]) + (" ..." if len(parts) > 6 else "")

    def _oof(self, make_model, X, target, folds, raw: bool = False):
        """Out-of-fold predictions: probabilities (classification) or values (regression)."""
        n_classes = len(self.classes_) if self.classes_ is not None else 0
        out = np.zeros((len(target), n_classes)) if self.task_ == "classification" else np.zeros(len(target))
        for train_idx, test_idx in folds:
            model = make_model(train_idx)
            Xtr, Xte = X[train_idx], X[test_idx]
            ytr = target[train_idx]
            if self.task_ == "classification":
                present = np.unique(ytr)
                if len(present) == 1:
                    out[np.ix_(test_idx, present)] = 1.0
                    continue
                model.fit(Xtr, ytr)
                out[np.ix_(test_idx, model.classes_)] = model.predict_proba(Xte)
            else:
                model.fit(Xtr, ytr)
                out[test_idx] = model.predict(Xte)
        return out

    def _skill(self, oof, target) -> tuple[float, float]:
        if self.task_ == "regression":
            ss_res = float(np.sum((target - oof) ** 2))
            ss_tot = float(np.sum((target - target.mean()) ** 2)) or 1.0
            return float(max(0.0, 1 - ss_res / ss_tot)), float("nan")
        k = oof.shape[1]
        pred = oof.argmax(1)
        recalls = [np.mean(pred[target == c] == c) for c in range(k) if np.any(target == c)]
        bacc = float(np.mean(recalls))
        skill = max(0.0, (bacc - 1 / k) / (1 - 1 / k)) if k > 1 else 0.0
        aucs = [_auc(target == c, oof[:, c]) for c in (range(k) if k > 2 else [1])]
        aucs = [a for a in aucs if np.isfinite(a)]
        return float(skill), float(np.mean(aucs)) if aucs else float("nan")

    def _metric_words(self, skill, auc) -> str:
        if self.task_ == "regression":
            return f"R\u00b2 {skill:.2f}"
        k = len(self.classes_)
        bacc = skill * (1 - 1 / k) + 1 / k
        return f"balanced accuracy {bacc:.2f} where chance is {1 / k:.2f}" + (
            f", AUC {auc:.2f}" if np.isfinite(auc) else "")

    def _text_evidence(self, texts: pd.Series, target) -> str:
        """The words that carry the label, so a person sees *why* the text leaks."""
        try:
            model = _text_model(self.task_)
            model.fit(texts.fillna("").astype(str).to_numpy(), target)
            vocab = np.asarray(model[0].get_feature_names_out())
            coef = np.atleast_2d(model[-1].coef_)
            top = vocab[np.argsort(-np.abs(coef).max(0))[:5]]
            return "the words that carry it: " + ", ".join(repr(str(t)) for t in top)
        except Exception:  # noqa: BLE001 - evidence is a courtesy, never a failure
            return "the text names the outcome"

    def _deterministic(self, frame: pd.DataFrame, target, rows: list[dict]) -> None:
        """Flag columns that are a function of the label, or of the label and one other column."""
        if self.task_ != "classification":
            return
        n = len(target)
        k = int(target.max()) + 1
        if k < 2 or n / k < 5:
            return
        codes = {str(c): _codes(frame[c]) for c in frame.columns}
        card = {c: int(v.max()) + 1 if len(v) else 0 for c, v in codes.items()}
        by_name = {r["feature"]: r for r in rows}
        # "other" columns: few values, so label x other groups hold several rows each
        others = [c for c in codes if 2 <= card[c] <= 50]
        for col, fcode in codes.items():
            row = by_name.get(col)
            if row is None or row["kind"] == "constant" or card[col] < 2:
                continue
            seen = fcode >= 0
            if seen.sum() < 10:
                continue
            if _is_function_of(fcode[seen], target[seen]):
                row.update(suspicious=True, severity="critical",
                           reason=(f"takes exactly one value per label ({card[col]} values for {k} labels): "
                                   "it is a deterministic function of the label"), detail="function_of_label")
                continue
            if row["severity"] == "critical":
                continue
            top_share = np.bincount(fcode[seen]).max() / seen.sum()
            if top_share >= 0.9:
                continue  # a nearly constant column is trivially constant inside most small groups
            for other in others:
                if other == col:
                    continue
                ocode = codes[other]
                ok = seen & (ocode >= 0)
                key = target[ok] * (card[other] + 1) + ocode[ok]
                sizes = np.bincount(key)
                if np.count_nonzero(sizes) * 5 > ok.sum() or card[col] <= 2 or np.mean(sizes[key] >= 3) < 0.9:
                    continue  # too few rows per (label, other) group to tell, or too few values to mean much
                if _is_function_of(fcode[ok], key) and not _is_function_of(fcode[ok], ocode[ok]):
                    partner = by_name.get(other)
                    if partner is not None and partner.get("detail") == f"function_of_label_and:{col}":
                        # the relation runs both ways; the column that alone knows more about the label is the leak
                        if (partner["skill"] or 0) >= (row["skill"] or 0):
                            continue
                        partner.update(suspicious=False, severity="info", reason="", detail="")
                    row.update(suspicious=True, severity="warning",
                               reason=(f"a deterministic function of the label and {other!r}: within each "
                                       f"({other}, label) group it takes exactly one value"),
                               detail=f"function_of_label_and:{other}")
                    break

    def _flag_standout(self, table: pd.DataFrame) -> None:
        real = table[table["kind"] != "missingness"]
        if len(real) < 3:
            return
        skills = real["skill"].fillna(0).to_numpy()
        best = int(np.argmax(skills))
        second = np.partition(skills, -2)[-2]
        i = real.index[best]
        if (skills[best] >= self.standout_skill and skills[best] - second >= self.standout_margin
                and not table.at[i, "suspicious"]):
            table.at[i, "suspicious"] = True
            table.at[i, "severity"] = "warning"
            table.at[i, "reason"] = (f"alone it predicts the label far better than any other feature "
                                     f"(skill {skills[best]:.2f} against {second:.2f} for the next best)")


# ---------------------------------------------------------------------- helpers
def _row(feature, kind, skill, auc, severity, detail, reason, suspicious):
    return {"feature": feature, "kind": kind, "skill": skill, "auc": auc, "suspicious": suspicious,
            "severity": severity, "reason": reason, "detail": detail}


def _as_frame(frame) -> pd.DataFrame:
    if isinstance(frame, pd.DataFrame):
        return frame.rename(columns=str)
    arr = frame.detach().cpu().numpy() if hasattr(frame, "detach") else np.asarray(frame)
    if arr.ndim != 2:
        raise ValueError(f"feature screening needs a table (2-D), got shape {arr.shape}")
    return pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])


def _is_classification(y: np.ndarray) -> bool:
    if y.dtype.kind in "OUSbi" or y.dtype.kind == "u":
        return True
    finite = y[np.isfinite(y)]
    return bool(len(np.unique(finite)) <= max(20, int(0.02 * len(finite)))
                and np.allclose(finite, np.round(finite)))


def column_kind(values: pd.Series) -> tuple[str, pd.Series]:
    """(kind, the column prepared for scoring): numbers for numeric/date/identifier, else as is."""
    if values.nunique(dropna=True) <= 1:
        return "constant", values
    if pd.api.types.is_bool_dtype(values):
        return "numeric", values.astype(np.float64)
    if pd.api.types.is_datetime64_any_dtype(values):
        return "date", _date_numbers(values)
    if pd.api.types.is_timedelta64_dtype(values):
        return "numeric", values.dt.total_seconds()
    if pd.api.types.is_numeric_dtype(values):
        return "numeric", values.astype(np.float64)
    if isinstance(values.dtype, pd.CategoricalDtype):
        return "categorical", values.astype(object)
    text = values.dropna().astype(str)
    sample = text.iloc[:200]
    numbers = pd.to_numeric(text, errors="coerce")
    if numbers.notna().mean() >= 0.95:
        return "numeric", pd.to_numeric(values, errors="coerce").astype(np.float64)
    if sample.map(lambda s: bool(_DATE_LIKE.match(s))).mean() >= 0.9:
        parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
        if parsed.notna().sum() >= 0.9 * len(text):
            return "date", _date_numbers(parsed)
    words = sample.str.split().map(len)
    if words.mean() >= 3 and text.nunique() > 0.2 * len(text):
        return "text", values
    unique_ratio = text.nunique() / max(len(text), 1)
    if unique_ratio >= 0.9:
        # an identifier such as "P-000123": its digits keep the order rows were numbered in
        digits = text.map(lambda s: "".join(_DIGITS.findall(s)))
        as_num = pd.to_numeric(digits.where(digits != ""), errors="coerce")
        if as_num.notna().mean() >= 0.9:
            return "identifier", pd.to_numeric(
                values.astype(str).map(lambda s: "".join(_DIGITS.findall(s))).replace("", np.nan),
                errors="coerce").where(values.notna()).astype(np.float64)
    return "categorical", values.astype(object)


def _date_numbers(values: pd.Series) -> pd.Series:
    parsed = pd.to_datetime(values, utc=True) if not pd.api.types.is_datetime64_any_dtype(values) else values
    out = parsed.astype("int64").astype(np.float64) / 86400e9  # days
    out[parsed.isna().to_numpy()] = np.nan
    return out


_ID_NAME = re.compile(r"(^|[_\W])(id|ids|uuid|guid|key|index|idx|record|number|no|nr)$", re.I)


def _identifier_like(name: str, values: pd.Series, kind: str, unique_ratio: float) -> bool:
    if kind == "identifier":
        return True
    if kind == "numeric":
        v = values.dropna().to_numpy(np.float64)
        integral = len(v) > 0 and np.allclose(v, np.round(v))
        return bool(integral and (unique_ratio >= 0.9 or (_ID_NAME.search(name) and unique_ratio >= 0.5)))
    if kind == "categorical":
        return bool(unique_ratio >= 0.9 or (_ID_NAME.search(name) and unique_ratio >= 0.5))
    return False


def _tree_model(task: str, n_train: int):
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    # leaves of a few dozen rows: enough to follow a threshold or an ordering, too coarse to
    # memorise single rows (an identifier cannot fake skill on held-out folds)
    leaf = max(5, n_train // 100)
    cls = DecisionTreeClassifier if task == "classification" else DecisionTreeRegressor
    return cls(min_samples_leaf=leaf, max_leaf_nodes=64, random_state=0)


def _text_model(task: str):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import Ridge, SGDClassifier
    from sklearn.pipeline import make_pipeline

    vec = TfidfVectorizer(min_df=2, max_features=5000, ngram_range=(1, 2), sublinear_tf=True)
    # stochastic gradient logistic regression: linear time in the text size and the number of
    # classes (lbfgs on 10 classes x 5,000 n-grams took seconds per fold)
    head = (SGDClassifier(loss="log_loss", alpha=1e-4, max_iter=30, tol=1e-3, random_state=0)
            if task == "classification" else Ridge(alpha=1.0))
    return make_pipeline(vec, head)


def _target_encoding_oof(values: pd.Series, target, folds, task: str, n_classes: int, smoothing: float = 5.0):
    """Out-of-fold category -> label statistics; unseen categories get the prior."""
    codes = _codes(values)
    n_codes = int(codes.max()) + 2 if len(codes) else 1
    codes = np.where(codes < 0, n_codes - 1, codes)  # missing is a category of its own
    if task == "classification":
        out = np.zeros((len(target), n_classes))
        onehot = np.eye(n_classes)[target]
        for tr, te in folds:
            prior = onehot[tr].mean(0)
            counts = np.zeros((n_codes, n_classes))
            np.add.at(counts, codes[tr], onehot[tr])
            table = (counts + smoothing * prior) / (counts.sum(1, keepdims=True) + smoothing)
            out[te] = table[codes[te]]
        return out
    out = np.zeros(len(target))
    for tr, te in folds:
        prior = target[tr].mean()
        sums = np.bincount(codes[tr], weights=target[tr], minlength=n_codes)
        counts = np.bincount(codes[tr], minlength=n_codes)
        out[te] = ((sums + smoothing * prior) / (counts + smoothing))[codes[te]]
    return out


def _plain(value) -> str:
    """A label as a person writes it (no numpy reprs)."""
    return str(value.item() if isinstance(value, np.generic) else value)


def _reverse_skill(flag: np.ndarray, target: np.ndarray) -> float:
    """How well the label predicts a yes/no column: balanced accuracy rescaled to 0 (chance) .. 1."""
    k = int(target.max()) + 1
    rate = np.bincount(target, weights=flag.astype(np.float64), minlength=k) / np.maximum(
        np.bincount(target, minlength=k), 1)
    pred = rate[target] >= 0.5
    if flag.all() or not flag.any():
        return 0.0
    bacc = 0.5 * (np.mean(pred[flag]) + np.mean(~pred[~flag]))
    return float(max(0.0, 2 * bacc - 1))


def _auc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by ranks (the Mann-Whitney statistic); NaN with one class only."""
    from scipy.stats import rankdata

    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _codes(values: pd.Series) -> np.ndarray:
    """Integer codes of a column's values (-1 for missing); floats compared exactly."""
    v = values
    if not (pd.api.types.is_numeric_dtype(v) or pd.api.types.is_datetime64_any_dtype(v)):
        v = v.map(lambda x: x if pd.isna(x) else str(x))
    codes, _ = pd.factorize(v, use_na_sentinel=True)
    return codes.astype(np.int64)


def _is_function_of(values: np.ndarray, key: np.ndarray) -> bool:
    """True when each key value goes with exactly one ``values`` value."""
    key = np.asarray(key, dtype=np.int64)
    values = np.asarray(values, dtype=np.int64)
    n_values = int(values.max()) + 1
    joint = key * n_values + values
    n_keys = np.count_nonzero(np.bincount(key))
    if (int(key.max()) + 1) * n_values <= 4_000_000:  # a presence table beats sorting here
        seen = np.zeros((int(key.max()) + 1) * n_values, dtype=bool)
        seen[joint] = True
        return int(seen.sum()) == n_keys
    return len(np.unique(joint)) == n_keys
