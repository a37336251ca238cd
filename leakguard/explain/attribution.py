"""Per-sample attributions (SHAP values) for the model at hand.

One entry point, :func:`explain_model`, picks the explainer from the model's type:

- tree ensembles (scikit-learn, LightGBM, XGBoost, CatBoost): ``shap.TreeExplainer``;
- linear models (scikit-learn ``coef_``): ``shap.LinearExplainer``;
- PyTorch modules, tabular or image: ``shap.DeepExplainer`` (tabular) or ``shap.GradientExplainer``
  (images; expected gradients), always on a deep copy of the model (DeepExplainer leaves hooks
  behind when it fails), falling back to plain gradient x input;
- scikit-learn pipelines: the last step explained on the transformed features;
- anything else callable: ``shap.PermutationExplainer`` (tabular) or ``shap.PartitionExplainer``
  with an image masker (images).

Every explainer's output is brought to one form: attributions toward the output the model
predicted for that sample, shaped like the sample (``(F,)`` rows, ``(C, H, W)`` images).
Works with shap 0.44 and later (lists of per-class arrays before 0.45, arrays with the
output last since).

>>> from sklearn.ensemble import RandomForestClassifier
>>> att = explain_model(RandomForestClassifier().fit(X, y), X)   # doctest: +SKIP
>>> att.values.shape, att.method                                   # doctest: +SKIP
((569, 30), 'tree')
"""
from __future__ import annotations

import contextlib
import copy
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError

TREE_MODULES = ("sklearn.ensemble", "sklearn.tree", "lightgbm", "xgboost", "catboost")


@dataclass
class Attribution:
    """Attributions of the explained samples, toward the output predicted for each.

    values : (n, *sample_shape) attributions; data : the inputs, same shape (images channel-first);
    indices : positions of the explained samples in the caller's X; predicted : predicted class
    (or value); output : the output index explained (-1 for a single-output model);
    modality : "tabular" or "image"; method : which explainer produced them;
    requested : samples asked for (``len(indices)`` < requested when the time budget ran out).
    layout : how the caller's images were laid out ("nchw", "nhwc", "nhw"; "rows" for tables), so
    edited images can be given back to the model in its own layout (:func:`predict_classes`).
    device : where the model ran ("cuda:0" for a torch module on a GPU; "cpu" otherwise).
    """

    values: np.ndarray
    data: np.ndarray
    indices: np.ndarray
    predicted: np.ndarray
    output: np.ndarray
    modality: str
    method: str
    feature_names: list[str]
    requested: int
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    layout: str = "rows"
    device: str = "cpu"

    @property
    def complete(self) -> bool:
        return len(self.indices) >= self.requested


# ---------------------------------------------------------------------- inputs
def as_array(X):
    """(numpy array, feature names or None) from an array, DataFrame, tensor or list of arrays."""
    import pandas as pd

    if isinstance(X, pd.DataFrame):
        return X.to_numpy(), [str(c) for c in X.columns]
    if hasattr(X, "detach"):
        return X.detach().cpu().numpy(), None
    if isinstance(X, (list, tuple)) and X and hasattr(X[0], "detach"):
        return np.stack([x.detach().cpu().numpy() for x in X]), None
    if isinstance(X, (list, tuple)) and X and hasattr(X[0], "size") and hasattr(X[0], "mode"):  # PIL
        return np.stack([np.asarray(im) for im in X]), None
    arr = np.asarray(X)
    if arr.dtype == object:
        raise InputError("X must be numeric (an array, a DataFrame of numbers, or a tensor); "
                         "encode text and categories first, or explain a scikit-learn Pipeline that does")
    return arr, None


def modality_of(arr: np.ndarray) -> str:
    if arr.ndim == 2:
        return "tabular"
    if arr.ndim in (3, 4):
        return "image"
    raise InputError(f"cannot explain inputs of shape {arr.shape}: give rows (N, F) or images "
                     "(N, C, H, W), (N, H, W, C) or (N, H, W)")


def is_torch_module(model) -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is optional
        return False
    return isinstance(model, torch.nn.Module)


def _module_of(model) -> str:
    return type(model).__module__ or ""


def is_tree_model(model) -> bool:
    mod = _module_of(model)
    if not mod.startswith(TREE_MODULES):
        return False
    name = type(model).__name__
    return any(k in name for k in ("Tree", "Forest", "Boost", "GBM", "XGB", "LGBM", "CatBoost", "Booster"))


def is_linear_model(model) -> bool:
    mod = _module_of(model)
    return hasattr(model, "coef_") and mod.startswith(("sklearn.linear_model", "sklearn.svm", "sklearn.discriminant"))


# ---------------------------------------------------------------------- entry point
def explain_model(model, X, y=None, feature_names=None, background=None, max_samples: int = 1000,
                  time_budget: float | None = 300.0, method: str = "auto", progress: bool | None = None,
                  random_state: int = 0, batch_size: int | None = None) -> Attribution:
    """Attributions of ``model`` on (a sample of at most ``max_samples`` rows of) ``X``.

    ``method``: "auto", or one of "tree", "linear", "deep", "gradient", "gradient_x_input",
    "permutation", "partition". ``time_budget`` (seconds) stops explaining further batches when
    spent; the samples explained so far are kept (``Attribution.requested`` says how many were
    asked for).
    """
    started = time.perf_counter()
    is_torch = is_torch_module(model)
    arr, names = as_array(X)
    if len(arr) == 0:
        raise InputError("X is empty: nothing to explain")
    modality = modality_of(arr)
    if feature_names is not None:
        names = [str(n) for n in feature_names]
    rng = np.random.default_rng(random_state)
    indices = np.arange(len(arr))
    if len(arr) > max_samples:
        indices = _sample(indices, y, max_samples, rng)
    data = arr[indices]
    if modality == "image" and not is_torch and data.ndim == 4 and data.shape[-1] in (1, 3, 4) \
            and data.shape[1] not in (1, 3, 4):
        layout = "nhwc"
    else:
        layout = "nchw" if modality == "image" and data.ndim == 4 else "nhw" if data.ndim == 3 else "rows"
    if modality == "tabular":
        names = names or [f"x{i}" for i in range(arr.shape[1])]
        if len(names) != arr.shape[1] and not _is_pipeline(model):
            raise InputError(f"feature_names has {len(names)} names but X has {arr.shape[1]} columns")
    bg = None
    if background is not None:
        bg, _ = as_array(background)
    else:
        pool = np.setdiff1d(np.arange(len(arr)), indices) if len(arr) > len(indices) + 10 else np.arange(len(arr))
        n_bg = 100 if modality == "tabular" else 16
        bg_idx = np.sort(rng.choice(pool, min(n_bg, len(pool)), replace=False))
        bg = arr[bg_idx]
        if _is_pipeline(model) and hasattr(X, "iloc"):
            bg = X.iloc[bg_idx]
    if _is_pipeline(model) and modality == "tabular" and (is_tree_model(model[-1]) or is_linear_model(model[-1])):
        # explain the last step on the features the earlier steps make (one-hot columns, scaled values)
        head, model = model[:-1], model[-1]
        rows = X.iloc[indices] if hasattr(X, "iloc") else data
        data, bg = _dense(head.transform(rows)).astype(np.float64), _dense(head.transform(bg)).astype(np.float64)
        try:
            names = [str(n) for n in head.get_feature_names_out()]
        except Exception:  # noqa: BLE001 - names are a courtesy
            names = [f"t{i}" for i in range(data.shape[1])]
    budget = Budget(time_budget, started)
    explainer = _choose(model, method, modality, is_torch)
    values, predicted, output, used, kept = explainer(model, data, bg, budget, progress, batch_size, rng)
    notes = []
    if kept < len(data):
        notes.append(f"time budget of {time_budget:.0f} s spent: {kept} of {len(data)} samples explained")
    data = data[:kept]
    values = values[:kept]
    # one layout for everyone downstream: images channel-first
    if layout == "nhwc":
        data, values = np.moveaxis(data, -1, 1), np.moveaxis(values, -1, 1)
    elif layout == "nhw":
        data, values = data[:, None], values[:, None]
    return Attribution(values=np.asarray(values, dtype=np.float32), data=np.asarray(data),
                       indices=indices[:kept], predicted=np.asarray(predicted)[:kept],
                       output=np.asarray(output)[:kept], modality=modality, method=used,
                       feature_names=list(names) if names else [], requested=len(indices),
                       seconds=time.perf_counter() - started, notes=notes, layout=layout,
                       device=str(_torch_device_dtype(model)[0]) if is_torch else "cpu")


def predict_classes(model, images: np.ndarray, layout: str = "nchw", batch_size: int = 256) -> np.ndarray:
    """The class ``model`` predicts for each of ``images`` (channel-first, as in :class:`Attribution`).

    Used to test a region by intervention (remove it, paste it elsewhere). Torch modules run on a
    deep copy in eval mode without gradients; other callables through their scores. ``layout`` is
    the model's own input layout (``Attribution.layout``).
    """
    images = np.asarray(images)
    if layout == "nhwc":
        images = np.moveaxis(images, 1, -1)
    elif layout == "nhw":
        images = images[:, 0]
    if is_torch_module(model):
        import torch

        net, device, dtype = _torch_copy(model)
        threads = _torch_threads(1) if device.type == "cpu" else contextlib.nullcontext()
        out = []
        with threads:
            for start in range(0, len(images), batch_size):
                x = torch.as_tensor(images[start:start + batch_size], dtype=dtype).to(device)
                out.append(_torch_predict(net, x)[0])
        return np.concatenate(out) if out else np.zeros(0, dtype=int)
    parts = [_predict_scores(model, images[s:s + batch_size])[0] for s in range(0, len(images), batch_size)]
    scores = np.concatenate(parts) if parts else np.zeros((0,))
    if scores.ndim == 2 and scores.shape[1] > 1:
        return scores.argmax(1)
    scores = scores.reshape(len(scores))
    return (scores > (0.5 if scores.min() >= 0 and scores.max() <= 1 else 0)).astype(int)


class Budget:
    """Seconds left of a time budget (None: unlimited)."""

    def __init__(self, seconds: float | None, started: float):
        self.seconds, self.started = seconds, started

    @property
    def spent(self) -> bool:
        return self.seconds is not None and time.perf_counter() - self.started > self.seconds


def _sample(indices, y, k, rng):
    """``k`` of ``indices``, stratified by ``y`` when given so rare classes stay represented."""
    if y is None:
        return np.sort(rng.choice(indices, k, replace=False))
    y = np.asarray(y.detach().cpu().numpy() if hasattr(y, "detach") else y)
    from sklearn.model_selection import train_test_split

    try:
        pick, _ = train_test_split(indices, train_size=k, stratify=y, random_state=int(rng.integers(1 << 31)))
    except ValueError:
        pick = rng.choice(indices, k, replace=False)
    return np.sort(pick)


def _choose(model, method: str, modality: str, is_torch: bool):
    table = {"tree": _explain_tree, "linear": _explain_linear, "deep": _explain_torch,
             "gradient": _explain_torch, "gradient_x_input": _explain_torch,
             "permutation": _explain_callable, "partition": _explain_callable}
    if method != "auto":
        if method not in table:
            raise InputError(f"unknown method {method!r}; choose 'auto' or one of {sorted(table)}")
        fn = table[method]
        if fn is _explain_torch:
            return lambda *a: _explain_torch(*a, methods=(method,))
        return fn
    if is_torch:
        return _explain_torch
    if modality == "tabular" and is_tree_model(model):
        return _explain_tree
    if modality == "tabular" and is_linear_model(model):
        return _explain_linear
    return _explain_callable


# ---------------------------------------------------------------------- output handling
def _n_classes(model) -> int:
    classes = getattr(model, "classes_", None)
    return len(classes) if classes is not None else 0


def _booster_scores(model, data):
    """(scores, is_classifier) of a native LightGBM / XGBoost ``Booster``; None for other models.

    Their ``predict`` gives probabilities for classification objectives and has no
    ``predict_proba``; XGBoost's wants a DMatrix.
    """
    if type(model).__name__ != "Booster":
        return None
    mod = _module_of(model)
    if mod.startswith("xgboost"):
        import json

        import xgboost

        objective = json.loads(model.save_config())["learner"]["objective"]["name"]
        names = model.feature_names  # a Booster trained on a DataFrame checks the names
        if names is not None and np.ndim(data) == 2 and np.shape(data)[1] != len(names):
            names = None
        scores = np.asarray(model.predict(xgboost.DMatrix(np.asarray(data), feature_names=names)))
        return scores, objective.startswith("binary:") or objective == "multi:softprob"
    if mod.startswith("lightgbm"):
        objective = str(model.params.get("objective", ""))
        return np.asarray(model.predict(data)), objective in ("binary", "multiclass", "multiclassova",
                                                               "cross_entropy", "softmax", "ova")
    return None


def _predict_scores(model, data):
    """(scores (n, K) or (n,), is_classifier) from a scikit-learn-like model or a callable."""
    booster = _booster_scores(model, data)
    if booster is not None:
        return booster
    names = getattr(model, "feature_names_in_", getattr(getattr(model, "__self__", None), "feature_names_in_", None))
    if names is not None and isinstance(data, np.ndarray) and data.ndim == 2 and data.shape[1] == len(names):
        import pandas as pd

        data = pd.DataFrame(data, columns=names)  # as the model was fitted, without a warning per call
    if hasattr(model, "predict_proba"):
        try:
            return np.asarray(model.predict_proba(data)), True
        except (AttributeError, NotImplementedError):
            pass
    if hasattr(model, "decision_function") and _n_classes(model):
        return np.asarray(model.decision_function(data)), True
    if hasattr(model, "predict"):
        return np.asarray(model.predict(data), dtype=np.float64), False
    return np.asarray(model(data), dtype=np.float64), False


def _to_predicted_output(values, scores, is_classifier, sample_ndim):
    """Pick, per sample, the attribution toward the predicted output.

    ``values``: list of per-output arrays (shap < 0.45), or an array whose last axis is the
    output when it has one more axis than a sample. Single-output classifiers (a margin for the
    positive class) are sign-flipped for samples predicted negative, so every attribution reads
    "evidence for what the model predicted".
    """
    if isinstance(values, list):
        values = np.stack([np.asarray(v) for v in values], axis=-1)
    values = np.asarray(values)
    scores = np.asarray(scores)
    n = values.shape[0]
    if values.ndim == sample_ndim + 2:  # one slice per output
        k = values.shape[-1]
        if scores.ndim == 2 and scores.shape[1] == k:
            pred = scores.argmax(1)
        elif k == 2 and scores.ndim == 1:
            pred = (scores > (0.5 if scores.min() >= 0 else 0)).astype(int)
        else:
            pred = np.zeros(n, dtype=int)
        picked = np.take_along_axis(values, pred.reshape((n,) + (1,) * (values.ndim - 1)), axis=-1)[..., 0]
        return picked, pred, pred
    # a single output
    if is_classifier:
        if scores.ndim == 2:
            pred = scores.argmax(1)
            positive = pred == scores.shape[1] - 1
        else:
            positive = scores > (0.5 if scores.min() >= 0 and scores.max() <= 1 else 0)
            pred = positive.astype(int)
        sign = np.where(positive, 1.0, -1.0).reshape((n,) + (1,) * (values.ndim - 1))
        return values * sign, pred, np.full(n, -1)
    pred = scores.reshape(n, -1)[:, 0] if scores.size else np.zeros(n)
    return values, pred, np.full(n, -1)


def _batches(n: int, size: int, progress, desc: str):
    from tqdm.auto import tqdm

    starts = list(range(0, n, size))
    return tqdm(starts, desc=desc, unit="batch", leave=False,
                disable=(not progress) if progress is not None else None)


def _run_batched(fn, data, budget, progress, batch_size, desc):
    """Apply ``fn`` to batches of ``data`` until done or the budget is spent; (parts, kept)."""
    parts, kept = [], 0
    for start in _batches(len(data), batch_size, progress, desc):
        if parts and budget.spent:
            break
        parts.append(fn(data[start:start + batch_size]))
        kept = min(len(data), start + batch_size)
    return parts, kept


# ---------------------------------------------------------------------- explainers
def _explain_tree(model, data, bg, budget, progress, batch_size, rng):
    import shap

    try:
        explainer = shap.TreeExplainer(model)
    except Exception as err:  # noqa: BLE001 - an unsupported tree falls back to the generic path
        warnings.warn(f"shap.TreeExplainer cannot read {type(model).__name__} ({err}); using "
                      "the permutation explainer", RuntimeWarning, stacklevel=3)
        return _explain_callable(model, data, bg, budget, progress, batch_size, rng)

    def one(batch):
        with warnings.catch_warnings():
            # shap >= 0.45 warns that LightGBM's binary output "changed to a list"; both forms are handled
            warnings.filterwarnings("ignore", message="LightGBM binary classifier", category=UserWarning)
            return _shap_values(explainer, batch)

    parts, kept = _run_batched(one, data, budget, progress, batch_size or 256, "leakguard: SHAP (tree)")
    values = _concat_outputs(parts)
    scores, is_clf = _predict_scores(model, data[:kept])
    picked, pred, output = _to_predicted_output(values, scores, is_clf, 1)
    return picked, pred, output, "tree", kept


def _explain_linear(model, data, bg, budget, progress, batch_size, rng):
    import shap

    explainer = shap.LinearExplainer(model, bg)
    parts, kept = _run_batched(lambda b: _shap_values(explainer, b), data, budget, progress,
                               batch_size or 1024, "leakguard: SHAP (linear)")
    values = _concat_outputs(parts)
    scores, is_clf = _predict_scores(model, data[:kept])
    picked, pred, output = _to_predicted_output(values, scores, is_clf, 1)
    return picked, pred, output, "linear", kept


def _shap_values(explainer, batch):
    try:
        return explainer.shap_values(batch, check_additivity=False)
    except TypeError:  # explainers without the additivity flag
        return explainer.shap_values(batch)


def _concat_outputs(parts):
    if isinstance(parts[0], list):
        return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]
    return np.concatenate([np.asarray(p) for p in parts])


def _is_pipeline(model) -> bool:
    return type(model).__name__ == "Pipeline" and hasattr(model, "steps")


def _dense(m):
    return m.toarray() if hasattr(m, "toarray") else np.asarray(m)


def _explain_callable(model, data, bg, budget, progress, batch_size, rng):
    """Model-agnostic: permutation SHAP on rows, partition SHAP with a blurring-free image masker."""
    import shap

    sample_shape = data.shape[1:]
    if data.ndim == 2:
        def f(x):
            s, _ = _predict_scores(model, x)
            return s
        # a small background keeps the cost at (2F+1) x 25 model rows per sample
        masker = shap.maskers.Independent(bg, max_samples=min(len(bg), 25))
        explainer = shap.PermutationExplainer(f, masker)
        max_evals = 2 * data.shape[1] + 1
        used = "permutation"

        def one(batch):
            exp = explainer(batch, max_evals=max(max_evals, 10), silent=True)
            return exp.values
    else:
        flat_shape = sample_shape

        def f(x):
            s, _ = _predict_scores(model, np.asarray(x).reshape((-1,) + flat_shape))
            return s
        # a constant fill needs no OpenCV and reads as "this region removed"
        hwc = sample_shape if data.ndim == 4 else sample_shape + (1,)
        masker = shap.maskers.Image(float(np.median(bg)), hwc)
        explainer = shap.PartitionExplainer(
            lambda x: f(np.asarray(x).reshape((-1,) + flat_shape)), masker)
        used = "partition"

        def one(batch):
            exp = explainer(batch.reshape((-1,) + hwc), max_evals=300, batch_size=64, silent=True,
                            outputs=shap.Explanation.argsort.flip[:1])
            v = np.asarray(exp.values)[..., 0]
            return v.reshape(batch.shape)
    parts, kept = _run_batched(one, data, budget, progress, batch_size or 16, f"leakguard: SHAP ({used})")
    values = np.concatenate(parts)
    scores, is_clf = _predict_scores(model, data[:kept])
    if used == "partition":  # explained the top output already
        pred = np.asarray(scores).argmax(1) if np.ndim(scores) == 2 else np.asarray(scores)
        return values, pred, pred if np.ndim(scores) == 2 else np.full(kept, -1), used, kept
    picked, pred, output = _to_predicted_output(values, scores, is_clf, data.ndim - 1)
    return picked, pred, output, used, kept


@contextlib.contextmanager
def _torch_threads(n: int = 1):
    """Explain on one CPU thread: small batches run faster without thread contention."""
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(max(1, min(n, before)))
        yield
    finally:
        torch.set_num_threads(before)


def _explain_torch(model, data, bg, budget, progress, batch_size, rng, methods=None):
    """Gradient-based SHAP for a torch module, on deep copies; DeepExplainer -> GradientExplainer -> grad x input."""
    import torch

    device, dtype = _torch_device_dtype(model)
    image = data.ndim >= 3
    if methods is None:
        methods = ("gradient", "gradient_x_input") if image else ("deep", "gradient", "gradient_x_input")
    x_all = torch.as_tensor(np.asarray(data), dtype=dtype)
    bg_t = torch.as_tensor(np.asarray(bg), dtype=dtype).to(device)
    errors = []
    threads = _torch_threads(1) if device.type == "cpu" else contextlib.nullcontext()
    with threads:
        for used in methods:
            net, _, _ = _torch_copy(model)
            try:
                fn = {"deep": _torch_deep, "gradient": _torch_gradient,
                      "gradient_x_input": _torch_grad_x_input}[used]
                size = batch_size or (32 if image else 256)
                parts, kept = _run_batched(lambda b: fn(net, b.to(device), bg_t), x_all, budget, progress,
                                           size, f"leakguard: SHAP ({used})")
            except Exception as err:  # noqa: BLE001 - try the next, more robust explainer
                errors.append(f"{used}: {type(err).__name__}: {err}")
                continue
            finally:
                del net
            values = np.concatenate([p[0] for p in parts])
            pred = np.concatenate([p[1] for p in parts])
            output = np.concatenate([p[2] for p in parts])
            if len(errors):
                warnings.warn("leakguard fell back to " + used + " after: " + "; ".join(errors),
                              RuntimeWarning, stacklevel=3)
            return values, pred, output, used, kept
    raise RuntimeError("no explainer worked for this torch model: " + "; ".join(errors))


def _torch_device_dtype(model):
    """(device, dtype) leakguard explains ``model`` on: the module's own device (its first parameter's
    or buffer's; CPU for a module with neither), and its floating dtype, float32 for a half or
    bfloat16 module (SHAP and numpy work in float32)."""
    import torch

    tensors = list(model.parameters()) + list(model.buffers())
    device = tensors[0].device if tensors else torch.device("cpu")
    dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.float32)
    return device, (torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype)


def _torch_copy(model):
    """(copy, device, dtype): a deep copy of the user's module to explain, on its own device, in eval
    mode, half / bfloat16 weights in float32, its output flattened to (n, outputs). The user's
    module keeps its weights, device, precision, training mode and hooks (SHAP's DeepExplainer
    leaves hooks behind when it fails)."""
    import torch

    device, dtype = _torch_device_dtype(model)
    net = _Wrapped(_copy_module(model)).to(device).eval()
    if any(t.dtype in (torch.float16, torch.bfloat16) for t in list(net.parameters()) + list(net.buffers())):
        net = net.float()
    return net, device, dtype


def _copy_module(model):
    """A deep copy of a torch module; when ``copy.deepcopy`` cannot copy one of its attributes (a
    Python module such as ``torch.cuda``, which an Ultralytics trainer keeps after GPU training, a
    lock, an open file), a clone of the module tree instead: own parameters, buffers, submodules
    and hook tables, every other attribute shared with the user's module."""
    try:
        return copy.deepcopy(model)
    except Exception:  # noqa: BLE001 - TypeError ("cannot pickle 'module' object"), locks, handles, ...
        return _clone_module(model, {})


def _clone_module(module, memo: dict):
    import torch

    if id(module) in memo:  # a submodule used twice stays one module
        return memo[id(module)]
    clone = module.__class__.__new__(module.__class__)
    memo[id(module)] = clone
    state = dict(module.__dict__)
    for key, value in state.items():
        if "hook" in key and isinstance(value, dict):
            state[key] = type(value)(value)  # hooks added to the clone stay off the user's module
        elif isinstance(value, set):
            state[key] = set(value)

    def tensor(t, parameter):
        if t is None:
            return None
        if id(t) not in memo:  # tied weights stay tied
            data = t.detach().clone()
            memo[id(t)] = torch.nn.Parameter(data, requires_grad=t.requires_grad) if parameter else data
        return memo[id(t)]

    state["_parameters"] = type(module._parameters)((k, tensor(v, True)) for k, v in module._parameters.items())
    state["_buffers"] = type(module._buffers)((k, tensor(v, False)) for k, v in module._buffers.items())
    state["_modules"] = type(module._modules)(
        (k, None if m is None else _clone_module(m, memo)) for k, m in module._modules.items())
    clone.__dict__.update(state)
    return clone


def _wrapped_class():
    import torch

    class Wrapped(torch.nn.Module):
        """The user's module with its output flattened to (n, outputs), as the explainers expect."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            out = self.inner(x)
            if isinstance(out, (tuple, list)):
                out = out[0]
            if isinstance(out, dict):
                out = out.get("logits", next(iter(out.values())))
            if hasattr(out, "logits"):
                out = out.logits
            return out.reshape(out.shape[0], -1)

    return Wrapped


def _Wrapped(inner):
    return _wrapped_class()(inner)


def _torch_predict(net, x):
    import torch

    with torch.no_grad():
        out = net(x)
    k = out.shape[1]
    if k == 1:
        positive = (out[:, 0] > 0).cpu().numpy()
        return positive.astype(int), np.full(len(x), -1), np.where(positive, 1.0, -1.0)
    pred = out.argmax(1).cpu().numpy()
    return pred, pred, None


def _torch_deep(net, x, bg):
    import shap

    pred, output, sign = _torch_predict(net, x)
    explainer = shap.DeepExplainer(net, bg)
    res = explainer.shap_values(x, ranked_outputs=1, check_additivity=False)
    values = np.asarray(res[0] if isinstance(res, tuple) else res)
    values = _first_output(values, x.ndim)
    if sign is not None:
        values = values * sign.reshape((-1,) + (1,) * (values.ndim - 1))
    return values, pred, output


def _torch_gradient(net, x, bg):
    import shap

    pred, output, sign = _torch_predict(net, x)
    explainer = shap.GradientExplainer(net, bg, batch_size=64)
    res = explainer.shap_values(x, nsamples=32, ranked_outputs=1, rseed=0)
    values = np.asarray(res[0] if isinstance(res, tuple) else res)
    values = _first_output(values, x.ndim)
    if sign is not None:
        values = values * sign.reshape((-1,) + (1,) * (values.ndim - 1))
    return values, pred, output


def _first_output(values, x_ndim):
    if isinstance(values, list):  # shap < 0.45: one array per ranked output
        values = np.asarray(values[0])
    if values.ndim == x_ndim + 1:
        values = values[..., 0]
    return values


def _torch_grad_x_input(net, x, bg):
    import torch

    pred, output, sign = _torch_predict(net, x)
    base = bg.mean(0, keepdim=True)
    z = x.clone().requires_grad_(True)
    out = net(z)
    idx = torch.as_tensor(np.where(output >= 0, output, 0), device=out.device)
    target = out.gather(1, idx[:, None]).sum()
    grad, = torch.autograd.grad(target, z)
    values = ((x - base) * grad).detach().cpu().numpy()
    if sign is not None:
        values = values * sign.reshape((-1,) + (1,) * (values.ndim - 1))
    return values, pred, output
