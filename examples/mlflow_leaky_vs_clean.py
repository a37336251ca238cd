"""Two MLflow runs of the demo data, one leaky and one clean, then ``leakguard compare``.

The leaky run trains on the demo's digits as they were split (augmented copies on both sides);
the clean run drops the validation images leakguard linked to the training split. Each run logs
the audit and the model's accuracy on the whole validation split and on its clean and leaked
parts (``accuracy/clean``, ``accuracy/leaked``), the figure that answers "is my model good, or
is it the leak?".

    python examples/mlflow_leaky_vs_clean.py --tracking-uri sqlite:///mlflow.db
    leakguard compare leaky clean --tracking-uri sqlite:///mlflow.db
    mlflow ui --backend-store-uri sqlite:///mlflow.db
"""
from __future__ import annotations

import argparse

import numpy as np


def accuracy_parts(model, X, y, leaked_idx) -> dict[str, float]:
    """Accuracy on all of X, on the rows not in ``leaked_idx`` (clean) and on those in it (leaked)."""
    right = model.predict(X.reshape(len(X), -1)) == y
    leaked = np.zeros(len(y), dtype=bool)
    leaked[np.asarray(leaked_idx, dtype=int)] = True
    out = {"accuracy": float(right.mean())}
    if (~leaked).any():
        out["accuracy/clean"] = float(right[~leaked].mean())
    if leaked.any():
        out["accuracy/leaked"] = float(right[leaked].mean())
    return out


def log_run(name: str, experiment_id: str, client, X_train, y_train, X_val, y_val, *, save_root=None,
            checks=None):
    """Audit, train a small classifier, log both into a new run ``name``; returns the run id and the report."""
    from sklearn.neighbors import KNeighborsClassifier

    import leakguard as lg

    run = client.create_run(experiment_id, run_name=name)
    run_id = run.info.run_id
    report = lg.audit({"train": X_train, "val": X_val}, labels={"train": y_train, "val": y_val},
                      modality="image", checks=checks, config=lg.AuditConfig(progress=False))
    report.log_to_mlflow(run_id=run_id, client=client,
                         save_dir=None if save_root is None else f"{save_root}/{name}")
    # a nearest-neighbour model memorises its training data: the leak's effect shows most clearly
    model = KNeighborsClassifier(n_neighbors=1).fit(X_train.reshape(len(X_train), -1), y_train)
    for key, value in accuracy_parts(model, X_val, y_val, report.leaked("val")).items():
        client.log_metric(run_id, key, value)
    client.log_param(run_id, "train_samples", len(X_train))
    client.log_param(run_id, "val_samples", len(X_val))
    client.set_terminated(run_id)
    return run_id, report


def main(tracking_uri: str | None = None, experiment: str = "leakguard-demo", save_root=None,
         checks=None) -> tuple[str, str]:
    """Log the leaky and the clean run; returns their run ids. ``checks``: as :func:`leakguard.audit` takes them."""
    from mlflow.tracking import MlflowClient

    from leakguard.demo import make_leaky_digits

    client = MlflowClient(tracking_uri=tracking_uri) if tracking_uri else MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    experiment_id = exp.experiment_id if exp else client.create_experiment(experiment)
    d = make_leaky_digits()
    leaky, report = log_run("leaky", experiment_id, client, d["X_train"], d["y_train"], d["X_val"],
                            d["y_val"], save_root=save_root, checks=checks)
    # the clean run: keep only validation images the leaky run's audit found no link for
    keep = np.setdiff1d(np.arange(len(d["X_val"])), report.leaked("val"))
    clean, _ = log_run("clean", experiment_id, client, d["X_train"], d["y_train"], d["X_val"][keep],
                       d["y_val"][keep], save_root=save_root, checks=checks)
    return leaky, clean


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--experiment", default="leakguard-demo")
    args = parser.parse_args()
    leaky_id, clean_id = main(args.tracking_uri, args.experiment)
    print(f"leaky run {leaky_id}\nclean run {clean_id}\n"
          f"compare them: leakguard compare {leaky_id} {clean_id}"
          + (f" --tracking-uri {args.tracking_uri}" if args.tracking_uri else ""))
