"""Against a real ``mlflow server``: logging over HTTP, and a server killed in the middle of a run."""
from __future__ import annotations

import time
import warnings

import numpy as np
import pytest

import leakguard as lg
from _mlflow_server import MlflowServer

pytest.importorskip("mlflow")


def audit_images(rng):
    train = rng.integers(0, 256, (30, 12, 12, 3), dtype=np.uint8)
    val = np.concatenate([train[:4], rng.integers(0, 256, (8, 12, 12, 3), dtype=np.uint8)])
    return lg.audit({"train": train, "val": val}, modality="image", checks=["exact_duplicate"],
                    config=lg.AuditConfig(progress=False))


class KillingClient:
    """A real MlflowClient whose server is killed (SIGKILL) just before the n-th artifact upload."""

    def __init__(self, client, server, kill_before_artifact: int):
        self._client, self._server, self._n, self.calls = client, server, kill_before_artifact, 0

    def log_artifact(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self._n:
            self._server.kill()
        return self._client.log_artifact(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_server_logging_and_killed_server_loses_nothing(tmp_path, rng):
    from mlflow import MlflowClient

    from leakguard.cli import main

    backend = f"sqlite:///{tmp_path / 'server.db'}"
    artifacts = tmp_path / "artifacts"
    report = audit_images(rng)
    server = MlflowServer(backend, artifacts, tmp_path / "server1.log").start()
    try:
        client = MlflowClient(tracking_uri=server.uri)
        exp = client.create_experiment("faults")
        # 1. a normal upload over HTTP: everything arrives
        ok_run = client.create_run(exp, run_name="ok").info.run_id
        out = report.log_to_mlflow(run_id=ok_run, client=client, save_dir=tmp_path / "ok")
        assert out["uploaded"]
        assert client.get_run(ok_run).data.tags["leakguard.verdict"] == "fail"
        assert "leakguard/report.html" in {a.path for a in client.list_artifacts(ok_run, "leakguard")}

        # 2. a training loop whose server dies in the middle of leakguard's upload
        run_mid = client.create_run(exp, run_name="killed-mid-upload").info.run_id
        run_after = client.create_run(exp, run_name="server-gone").info.run_id
        client.log_metric(run_mid, "loss", 1.0, step=0)
        killing = KillingClient(client, server, kill_before_artifact=3)
        started = time.perf_counter()
        with pytest.warns(RuntimeWarning, match="leakguard upload"):
            mid = report.log_to_mlflow(run_id=run_mid, client=killing, save_dir=tmp_path / "mid")
        assert killing.calls == 3 and not mid["uploaded"]
        # 3. the server stays down: the next report is saved, and quickly (bounded retries)
        with pytest.warns(RuntimeWarning, match="did not answer|could not log"):
            after = report.log_to_mlflow(run_id=run_after, client=client, save_dir=tmp_path / "after")
        assert not after["uploaded"]
        losses = [0.5 * epoch for epoch in range(3)]  # training goes on after the warnings
        assert len(losses) == 3
        assert time.perf_counter() - started < 90, "a dead server must not stall training for minutes"
    finally:
        server.stop()

    for folder in ("mid", "after"):
        for f in ("report.json", "report.html", "pairs.csv", "pairs.parquet", "pairs_exact_duplicate_val.png"):
            assert (tmp_path / folder / f).is_file(), f"{folder}/{f} lost"

    # 4. the server comes back (same store, same address; MLflow's client caches the artifact
    #    location of a run per process): `leakguard upload` sends the saved reports
    server2 = MlflowServer(backend, artifacts, tmp_path / "server2.log", port=server.port).start()
    try:
        for folder, run_id in (("mid", run_mid), ("after", run_after)):
            assert main(["upload", str(tmp_path / folder), "--run-id", run_id,
                         "--tracking-uri", server2.uri]) == 0
        client2 = MlflowClient(tracking_uri=server2.uri)
        for run_id in (run_mid, run_after):
            run = client2.get_run(run_id)
            assert run.data.tags["leakguard.verdict"] == "fail"
            assert run.data.metrics["leakguard/val/exact_duplicate"] == 4
            names = {a.path for a in client2.list_artifacts(run_id, "leakguard")}
            assert {"leakguard/report.html", "leakguard/report.json", "leakguard/pairs.parquet",
                    "leakguard/pairs_table.json", "leakguard/pairs_exact_duplicate_val.png"} <= names
            assert {i.dataset.name for i in run.inputs.dataset_inputs} == {"train", "val"}
        # what was logged before the crash is still there
        assert client2.get_run(run_mid).data.metrics["loss"] == 1.0
        # upload without --run-id: the folder remembers its run
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert main(["upload", str(tmp_path / "after"), "--tracking-uri", server2.uri]) == 0
    finally:
        server2.stop()
