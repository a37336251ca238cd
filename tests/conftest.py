"""Shared test set-up: nothing reaches for the network, MLflow stores live in temporary folders."""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="module")
def spark():
    """One SparkSession (``local[2]``) per test module of the Spark engine; its start is the slow part."""
    import sys

    pytest.importorskip("pyspark")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]").appName("leakguard-tests")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.default.parallelism", "2")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.driver.memory", "1g")
               # tiny jobs on a loaded machine: the JIT's optimising tier costs more CPU than it
               # wins back here, and one GC thread leaves the cores to the tests
               .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@contextlib.contextmanager
def sqlite_mlflow_store(folder: Path):
    """A sqlite tracking store in ``folder``: the tracking URI (and leakguard's report folder) set
    for the block, open runs ended and the URI reset after it. Yields the URI."""
    import mlflow

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("LEAKGUARD_REPORT_DIR", str(folder / "leakguard-reports"))
        mlflow.set_tracking_uri(uri)
        try:
            yield uri
        finally:
            while mlflow.active_run() is not None:
                mlflow.end_run()
            mlflow.set_tracking_uri(None)


@pytest.fixture
def mlflow_uri(tmp_path):
    """A fresh sqlite tracking store for one test; the tracking URI is set and reset."""
    with sqlite_mlflow_store(tmp_path) as uri:
        yield uri


@contextlib.contextmanager
def yolo_offline_settings(tmp_path_factory, mlflow: bool):
    """Ultralytics with no network, for a module-scoped fixture: its config folder in a temporary one
    (set before it is imported), a TTF font where its dataset check looks for Arial.ttf, settings
    sync off and its MLflow callback on or off. Yields Ultralytics' SETTINGS; restores them after."""
    if not DEJAVU.exists():
        pytest.skip("needs Debian's fonts-dejavu-core (the font YOLO's dataset check wants)")
    mp = pytest.MonkeyPatch()
    mp.setenv("YOLO_CONFIG_DIR", str(tmp_path_factory.mktemp("yolo_config")))
    mp.setenv("YOLO_OFFLINE", "1")
    mp.setenv("YOLO_AUTOINSTALL", "false")
    import ultralytics.utils as yolo_utils

    # when another test module imported Ultralytics first, its config folder is fixed already: use it
    font = Path(yolo_utils.USER_CONFIG_DIR) / "Arial.ttf"
    if not font.exists():
        font.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DEJAVU, font)
    before = {k: yolo_utils.SETTINGS[k] for k in ("sync", "mlflow")}
    yolo_utils.SETTINGS.update(sync=False, mlflow=mlflow)
    try:
        yield yolo_utils.SETTINGS
    finally:
        yolo_utils.SETTINGS.update(before)
        mp.undo()
