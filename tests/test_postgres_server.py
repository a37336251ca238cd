"""A team's tracking server: ``mlflow server`` backed by PostgreSQL, with leakguard logging to it.

The test starts Debian's PostgreSQL in a temporary folder (initdb + pg_ctl, as the ``postgres``
OS user when running as root, since PostgreSQL refuses to run as root), on 127.0.0.1 and a free
port, then an MLflow server on top of it, and logs an audit over HTTP.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

import leakguard as lg
from _mlflow_server import MlflowServer, free_port

pytestmark = pytest.mark.postgres
PG_BINS = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))


def _postgres_user():
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        return None


def _as_db_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the ``postgres`` OS user then."""
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    return [runuser, "-u", "postgres", "--", *cmd] if runuser else ["su", "postgres", "-c", " ".join(cmd)]


@pytest.fixture
def postgres():
    """A throw-away PostgreSQL cluster; yields (host, port). Stopped and removed afterwards."""
    if not PG_BINS:
        pytest.skip("needs Debian's postgresql (no /usr/lib/postgresql/*/bin/initdb)")
    if os.geteuid() == 0 and _postgres_user() is None:
        pytest.skip("running as root and there is no 'postgres' OS user to run PostgreSQL as")
    pytest.importorskip("psycopg2")
    bin_dir = Path(PG_BINS[-1]).parent
    # not under pytest's tmp_path: that folder is private to root, and the server runs as postgres
    root = Path(tempfile.mkdtemp(prefix="leakguard-pg-"))
    data, sock, log = root / "data", root / "sock", root / "postgres.log"
    sock.mkdir()
    user = _postgres_user()
    if os.geteuid() == 0:
        for p in (root, sock):
            os.chown(p, user.pw_uid, user.pw_gid)
    port = free_port()
    try:
        subprocess.run(_as_db_user([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                                    "-E", "UTF8", "--no-sync"]), check=True, capture_output=True, timeout=180)
        subprocess.run(_as_db_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "120",
                                    "-o", f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off",
                                    "start"]), check=True, capture_output=True, timeout=180)
    except subprocess.CalledProcessError as err:
        shutil.rmtree(root, ignore_errors=True)
        raise AssertionError(f"PostgreSQL did not start: {err.stderr.decode(errors='replace')}\n"
                             f"{log.read_text(errors='replace') if log.exists() else ''}") from err
    try:
        yield "127.0.0.1", port
    finally:
        subprocess.run(_as_db_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                       capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)


def test_mlflow_server_on_postgresql(postgres, tmp_path, rng):
    import psycopg2
    from mlflow import MlflowClient

    host, port = postgres
    conn = psycopg2.connect(host=host, port=port, user="postgres", dbname="postgres")
    conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
    conn.cursor().execute("CREATE DATABASE mlflow")
    conn.close()

    train = rng.integers(0, 256, (25, 10, 10), dtype=np.uint8)
    val = np.concatenate([train[:3], rng.integers(0, 256, (7, 10, 10), dtype=np.uint8)])
    report = lg.audit({"train": train, "val": val}, modality="image", checks=["exact_duplicate"],
                      config=lg.AuditConfig(progress=False))

    backend = f"postgresql+psycopg2://postgres@{host}:{port}/mlflow"
    with MlflowServer(backend, tmp_path / "artifacts", tmp_path / "server.log") as server:
        client = MlflowClient(tracking_uri=server.uri)
        exp = client.create_experiment("team")
        run_id = client.create_run(exp, run_name="shared").info.run_id
        out = report.log_to_mlflow(run_id=run_id, client=client, save_dir=tmp_path / "saved")
        assert out["uploaded"], out
        run = client.get_run(run_id)
        assert run.data.tags["leakguard.verdict"] == "fail"
        assert run.data.metrics["leakguard/val/exact_duplicate"] == 3
        assert {i.dataset.digest for i in run.inputs.dataset_inputs} == {report.splits["train"]["digest"],
                                                                          report.splits["val"]["digest"]}
        assert "leakguard/report.html" in {a.path for a in client.list_artifacts(run_id, "leakguard")}

    # the figures really live in PostgreSQL
    with psycopg2.connect(host=host, port=port, user="postgres", dbname="mlflow") as conn:
        cur = conn.cursor()
        cur.execute("SELECT value FROM metrics WHERE run_uuid = %s AND key = %s",
                    (run_id, "leakguard/val/leaked_fraction"))
        assert [round(v, 4) for (v,) in cur.fetchall()] == [round(3 / 10, 4)]
        cur.execute("SELECT value FROM tags WHERE run_uuid = %s AND key = 'leakguard.verdict'", (run_id,))
        assert cur.fetchall() == [("fail",)]
    conn.close()
