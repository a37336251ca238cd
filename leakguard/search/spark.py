"""The audit on Apache Spark, for datasets past one machine (``AuditConfig(engine="spark")``).

The job, stage by stage (every stage but the last runs in the executors):

1. **Read.** Each split becomes a Spark DataFrame with a dense, stable sample index ``_lg_idx``
   numbered exactly as the local engine numbers it: Parquet rows in (file path, row) order, files
   of a folder in sorted path order, in-memory items in their order.
2. **Signatures** (``mapInPandas``): the same code as the local engine, per batch: tabular rows
   through :func:`leakguard.signatures.exact.canonical_columns` and ``row_hashes``; files and
   items through :func:`leakguard.sources.canonical_item` and the signature registry
   (``get_signature(modality, kind).fn``). Samples that cannot be read come back with the reason
   and are counted in the report, as locally.
3. **Exact duplicates by hash join**: one shuffle of ``(key)`` over all samples keeps only keys
   held by two or more samples; tabular candidates are then verified value by value on their
   canonical cells (so a 64-bit hash collision is never reported). Only the duplicated samples
   reach the driver, where the local engine's own ``hash_join`` / ``duplicate_groups`` turn them
   into pairs, so pairs, order and text are those of the local engine.
4. **Banded candidate search** for similarity codes (:func:`band_join`): multi-index hashing of
   Hamming codes (``r + 1`` bands find every pair within ``r`` bits) and MinHash LSH bands, both
   as one equi-join on ``(band, band value)`` followed by exact verification of the candidates.

5. **Other checks** (:mod:`leakguard.search.spark_checks`): text near-copies
   (``augmented_duplicate``) by MinHash LSH bands and exact Jaccard verification in the executors;
   ``group_overlap`` and ``temporal_overlap`` as the local checks on the driver, from the group
   ids, timestamps and links (never the samples; group_overlap's scene and passage links are
   searched in the executors, :mod:`leakguard.search.spark_groups`); image near-copies
   (:mod:`leakguard.search.spark_image`) and image semantic duplicates
   (:mod:`leakguard.search.spark_semantic`), whose nearest-neighbour searches run as an exact
   distributed kNN join (:mod:`leakguard.search.spark_knn`); tabular and series near-copies and
   tabular semantic duplicates (:mod:`leakguard.search.spark_tabular`); audio near-copies, shared
   segments and semantic duplicates (:mod:`leakguard.search.spark_audio`); image partial
   duplicates, same-scale and ``resized=True`` (:mod:`leakguard.search.spark_image_partial`); text shared passages
   (:mod:`leakguard.search.spark_text_partial`) and text rewordings
   (:mod:`leakguard.search.spark_text_semantic`: the embedder fitted on the driver, the texts
   embedded in the executors); a user's image, table or audio embedder shipped to the executors
   (:mod:`leakguard.search.spark_embedders`); ``preprocessing_contamination``
   (:mod:`leakguard.search.spark_preprocessing`: the column statistics in the executors, the local
   check's decisions on the driver), ``target_leakage`` (:mod:`leakguard.search.spark_tabular_checks`:
   the local check on the driver, fed the rows the feature screen samples) and ``oversampling_leakage``
   (:mod:`leakguard.search.spark_oversampling`: the neighbour search and ray tests in the executors;
   ``report.meta["spark"]["oversampling_path"]``).

Checks the Spark engine does not run yet are left out (``report.meta["spark"]["not_run"]``);
asking for them by name raises :class:`~leakguard.errors.InputError`.

>>> import leakguard as lg
>>> report = lg.audit({"train": "s3a://bucket/train.parquet", "val": "s3a://bucket/val.parquet"},
...                   labels="label", config=lg.AuditConfig(engine="spark"))      # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import importlib
import os
import pickle
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..checks.exact import exact_cross_finding, exact_within_finding
from ..errors import InputError

TABLE_EXTENSIONS = (".parquet", ".pq")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
IDX = "_lg_idx"
LABEL = "_lg_label"


# --------------------------------------------------------------------------- session
def spark_session(config=None):
    """``config.spark``, else the active SparkSession, else a new local one.

    A new session runs Python workers with this interpreter (so leakguard is importable in the
    executors), keeps timestamps in UTC, and has no UI. ``LEAKGUARD_SPARK_MASTER`` picks its master
    (default ``local[*]``).
    """
    if config is not None and getattr(config, "spark", None) is not None:
        return config.spark
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    return (SparkSession.builder.appName("leakguard")
            .master(os.environ.get("LEAKGUARD_SPARK_MASTER", "local[*]"))
            .config("spark.ui.enabled", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .getOrCreate())


def _phase(spark, text: str) -> None:
    """Name the jobs that follow (Spark UI, event log), so each phase's cost can be read off."""
    spark.sparkContext.setJobDescription(f"leakguard: {text}")


# --------------------------------------------------------------------------- splits on Spark
@dataclass
class SparkSplit:
    """One split as a Spark DataFrame with the sample index ``_lg_idx``.

    ``kind`` is ``"table"`` (feature columns, plus ``_lg_label`` when labels come from a column),
    ``"files"`` (``_lg_path``, and ``_lg_content`` when Spark read the bytes) or ``"items"``
    (``_lg_payload``: a pickled in-memory item).
    """

    name: str
    role: str
    modality: str
    kind: str
    frame: object
    n: int
    features: list[str] | None = None
    labels: np.ndarray | None = None       # labels held on the driver (given as arrays)
    label_column: bool = False             # labels in the frame's ``_lg_label`` column
    has_groups: bool = False
    has_timestamps: bool = False
    pre_skipped: list[dict] = field(default_factory=list)
    local_source: object = None            # the local Source (files, items), for previews
    names: list | None = None              # file URIs in sample order (files Spark reads)

    @property
    def has_labels(self) -> bool:
        return self.labels is not None or self.label_column


def _is_remote(path: str) -> bool:
    """True for URIs Spark must read (s3a://, hdfs://, file:...); plain local paths are False."""
    return bool(_SCHEME.match(path)) and not re.match(r"^[A-Za-z]:[\\/]", path)  # not C:\...


def _uri_text(data) -> str:
    """A path or URI as text; ``pathlib`` folds ``s3a://b/k`` into ``s3a:/b/k``, which is undone."""
    text = os.fspath(data)
    if isinstance(data, os.PathLike):
        text = re.sub(r"^([A-Za-z][A-Za-z0-9+.\-]+):/(?!/)",
                      lambda m: m.group(0) if m.group(1) == "file" else f"{m.group(1)}://", text)
    return text


def _path_sort_key(path: str) -> str:
    # the local engine sorts pathlib.Paths, which compares part by part; a separator that sorts
    # below every character gives the same order on plain strings
    return path.replace("/", "\0")


def _table_paths(data) -> list[str] | None:
    """The Parquet paths a split names (a file, a folder or URI of Parquet, or a list), else None."""
    if isinstance(data, (str, os.PathLike)):
        s = _uri_text(data)
        low = s.lower().rstrip("/")
        if low.endswith(TABLE_EXTENSIONS):
            return [s]
        if not _is_remote(s) and Path(s).is_dir():
            # a Parquet dataset folder (as Spark writes them): every data file is Parquet
            files = [p for p in Path(s).rglob("*") if p.is_file() and not p.name.startswith(("_", "."))]
            if files and all(p.suffix.lower() in TABLE_EXTENSIONS for p in files):
                return [s]
        return None
    if isinstance(data, (list, tuple)) and data and all(isinstance(p, (str, os.PathLike)) for p in data):
        strs = [_uri_text(p) for p in data]
        if all(p.lower().endswith(TABLE_EXTENSIONS) for p in strs):
            return strs
    return None


def _with_dense_index(spark, frame, order_cols):
    """``frame`` with ``_lg_idx`` = 0..n-1 in ``order_cols`` order (no single-partition window)."""
    from pyspark.sql import functions as F

    ordered = frame.orderBy(*order_cols) if order_cols else frame
    ordered = ordered.withColumn("_lg_mid", F.monotonically_increasing_id())
    ordered = ordered.withColumn("_lg_pid", F.spark_partition_id()).persist()
    counts = sorted(ordered.groupBy("_lg_pid").agg(F.count("*").alias("c"), F.min("_lg_mid").alias("m"))
                    .collect(), key=lambda r: r["m"])
    offsets, total = [], 0
    for r in counts:
        offsets.append((r["_lg_pid"], total - r["m"]))
        total += r["c"]
    shift = spark.createDataFrame(offsets or [(0, 0)], "_lg_pid int, _lg_shift long")
    out = (ordered.join(F.broadcast(shift), "_lg_pid")
           .withColumn(IDX, F.col("_lg_mid") + F.col("_lg_shift"))
           .drop("_lg_mid", "_lg_pid", "_lg_shift"))
    return out, total


def _read_parquet(spark, paths: list[str]):
    """Rows of Parquet files with ``_lg_idx`` in (file path, row in file) order, and the row count."""
    from pyspark.sql import functions as F

    raw = spark.read.parquet(*paths)
    columns = list(raw.columns)
    frame = raw.select("*", F.col("_metadata.file_path").alias("_lg_file"),
                       F.col("_metadata.row_index").alias("_lg_row"))
    counts = frame.groupBy("_lg_file").count().collect()
    ordered = sorted(counts, key=lambda r: _path_sort_key(r["_lg_file"]))
    offsets, total = [], 0
    for r in ordered:
        offsets.append((r["_lg_file"], total))
        total += r["count"]
    if not offsets:
        return frame.withColumn(IDX, F.lit(0).cast("long")).limit(0).drop("_lg_file", "_lg_row"), 0, columns
    shift = spark.createDataFrame(offsets, "_lg_file string, _lg_off long")
    out = (frame.join(F.broadcast(shift), "_lg_file")
           .withColumn(IDX, F.col("_lg_off") + F.col("_lg_row"))
           .drop("_lg_file", "_lg_row", "_lg_off"))
    return out, total, columns


def _resolve_per_split(value, name: str, kind: str, n: int, columns):
    """(driver array or None, column name or None) for labels / groups / timestamps."""
    if value is None:
        return None, None
    if isinstance(value, str):
        if columns is None:
            raise InputError(f"{kind}={value!r} names a column, but split {name!r} is not a table")
        if value not in columns:
            raise InputError(f"split {name!r}: no column {value!r} for {kind}; columns are {list(columns)[:20]}")
        return None, value
    if isinstance(value, Mapping):
        seq = value.get(name)
        if seq is None:
            return None, None
        arr = np.asarray(seq.detach().cpu().numpy() if hasattr(seq, "detach") else seq)
        if arr.ndim == 0 or len(arr) != n:
            got = "a scalar" if arr.ndim == 0 else f"{len(arr)} values"
            raise InputError(f"split {name!r}: {kind} has {got} but the split has {n} samples")
        return arr, None
    raise InputError(f"{kind} must be a mapping of split name to sequence or a column name on the "
                     f"Spark engine; got {type(value).__name__}")


def _table_split(spark, name, role, frame, n, columns, labels, groups, timestamps) -> SparkSplit:
    from pyspark.sql import functions as F

    lab_arr, lab_col = _resolve_per_split(labels, name, "labels", n, columns)
    grp_arr, grp_col = _resolve_per_split(groups, name, "groups", n, columns)
    time_arr, time_col = _resolve_per_split(timestamps, name, "timestamps", n, columns)
    drop = {c for c in (lab_col, grp_col, time_col) if c is not None}
    features = [str(c) for c in columns if c not in drop]
    # group ids and timestamps from columns ride along for the group / temporal checks (driver side)
    frame = frame.select(IDX, *[F.col(f"`{c}`") for c in features],
                         *([F.col(f"`{lab_col}`").alias(LABEL)] if lab_col else []),
                         *([F.col(f"`{grp_col}`").alias("_lg_group")] if grp_col else []),
                         *([F.col(f"`{time_col}`").alias("_lg_time")] if time_col else []))
    return SparkSplit(name, role, "tabular", "table", frame, n, features=features, labels=lab_arr,
                      label_column=lab_col is not None,
                      has_groups=grp_arr is not None or grp_col is not None,
                      has_timestamps=time_arr is not None or time_col is not None)


def prepare_split(spark, name: str, data, role: str, labels=None, groups=None, timestamps=None,
                  modality: str | None = None, sample_rate: int | None = None) -> SparkSplit:
    """One split's data (Parquet, file paths or URIs, a Spark or pandas DataFrame, in-memory items)."""
    import pandas as pd

    from ..sources import to_source
    from ..sources.base import FileSource, SequenceSource, TabularSource

    if hasattr(data, "sparkSession") and hasattr(data, "schema"):  # a Spark DataFrame
        columns = [str(c) for c in data.columns]
        frame, n = _with_dense_index(spark, data.toDF(*columns), [])
        return _table_split(spark, name, role, frame, n, columns, labels, groups, timestamps)
    paths = _table_paths(data)
    if paths is None and modality == "tabular" and _remote_files(data) is not None:
        paths = _remote_files(data)  # a Parquet table under a URI without a .parquet name
    if paths is not None:
        frame, n, columns = _read_parquet(spark, paths)
        return _table_split(spark, name, role, frame, n, columns, labels, groups, timestamps)
    remote = _remote_files(data)
    if remote is not None:
        return _remote_file_split(spark, name, role, remote, modality, labels, groups, timestamps)
    source, found_labels = to_source(data, modality, name, sample_rate=sample_rate)
    if isinstance(source, TabularSource):
        pdf = source.frame.rename(columns=str).reset_index(drop=True)
        columns = list(pdf.columns)
        pdf.insert(0, IDX, np.arange(len(pdf), dtype=np.int64))
        frame = spark.createDataFrame(pdf)
        return _table_split(spark, name, role, frame, len(pdf), columns, labels, groups, timestamps)
    n = len(source)
    if isinstance(labels, str):
        raise InputError(f"labels={labels!r} names a column, but split {name!r} is not a table")
    lab_arr, _ = _resolve_per_split(labels, name, "labels", n, None)
    if lab_arr is None and labels is None and found_labels is not None:
        lab_arr = np.asarray(found_labels)
    grp_arr, _ = _resolve_per_split(groups, name, "groups", n, None)
    time_arr, _ = _resolve_per_split(timestamps, name, "timestamps", n, None)
    if isinstance(source, FileSource):
        rows = pd.DataFrame({IDX: np.arange(n, dtype=np.int64), "_lg_path": [str(p) for p in source.paths]})
        kind = "files"
    elif isinstance(source, SequenceSource):
        rows = pd.DataFrame({IDX: np.arange(n, dtype=np.int64),
                             "_lg_payload": [pickle.dumps(source.load(i), protocol=5) for i in range(n)]})
        kind = "items"
    else:  # torch datasets and other readers: items read on the driver, signatures in executors
        payload = []
        for i in range(n):
            try:
                payload.append(pickle.dumps(source.load(i), protocol=5))
            except Exception as err:  # noqa: BLE001 - read again in the executor, which records why
                payload.append(pickle.dumps(_Unreadable(f"{type(err).__name__}: {err}"), protocol=5))
        rows = pd.DataFrame({IDX: np.arange(n, dtype=np.int64), "_lg_payload": payload})
        kind = "items"
    schema = f"{IDX} long, " + ("_lg_path string" if kind == "files" else "_lg_payload binary")
    frame = spark.createDataFrame(rows, schema) if n else spark.createDataFrame([], schema)
    return SparkSplit(name, role, source.modality, kind, frame, n, labels=lab_arr,
                      has_groups=grp_arr is not None, has_timestamps=time_arr is not None,
                      pre_skipped=list(getattr(source, "pre_skipped", [])), local_source=source)


class _Unreadable:
    """Stands for an item the driver could not read; the executor reports it as skipped."""

    def __init__(self, reason: str):
        self.reason = reason


def _remote_files(data) -> list[str] | None:
    """URIs Spark must read itself: one folder / glob URI, or a list of file URIs."""
    if isinstance(data, (str, os.PathLike)) and _is_remote(_uri_text(data)):
        return [_uri_text(data)]
    if isinstance(data, (list, tuple)) and data and all(isinstance(p, (str, os.PathLike)) for p in data) \
            and all(_is_remote(_uri_text(p)) for p in data):
        return [_uri_text(p) for p in data]
    return None


def _normal_uri(p: str) -> str:
    # Spark qualifies local paths as file:/x; users write file:///x
    return re.sub(r"^file:/+", "file:/", p)


def _remote_file_split(spark, name, role, uris, modality, labels, groups, timestamps) -> SparkSplit:
    """Files under URIs (s3a://, hdfs://, file:...) read by Spark's binaryFile source."""
    from pyspark.sql import functions as F

    from ..sources.readers import modality_of_path

    reader = spark.read.format("binaryFile")
    single_folder = len(uris) == 1 and (Path(uris[0]).suffix == "" or any(c in uris[0] for c in "*?[{"))
    if single_folder:
        reader = reader.option("recursiveFileLookup", "true")
    listed = reader.load(uris[0] if single_folder else list(uris))
    found = [r["path"] for r in listed.select("path").collect()]
    if not single_folder:  # keep the user's order and count files that are missing
        have = {_normal_uri(p): p for p in found}
        found, missing = [], []
        for u in uris:
            (found.append(have[_normal_uri(u)]) if _normal_uri(u) in have else missing.append(u))
        if missing:
            raise InputError(f"split {name!r}: {len(missing)} files not found, first: {missing[0]}")
    else:
        found = sorted(found, key=_path_sort_key)
    kinds = {p: modality_of_path(Path(p)) for p in found}
    if modality is None:
        mods = {m for m in kinds.values() if m}
        if len(mods) != 1:
            raise InputError(f"split {name!r}: files under {uris[0]} are of kinds {sorted(mods) or 'unknown'}; "
                             "pass modality=")
        modality = mods.pop()
    keep = [p for p in found if kinds[p] == modality]
    skipped = [{"index": None, "file": p, "reason": f"unknown extension {Path(p).suffix or '(none)'!r}"}
               for p in found if kinds[p] is None]
    n = len(keep)
    lab_arr, _ = _resolve_per_split(labels, name, "labels", n, None)
    grp_arr, _ = _resolve_per_split(groups, name, "groups", n, None)
    time_arr, _ = _resolve_per_split(timestamps, name, "timestamps", n, None)
    index = spark.createDataFrame([(i, p) for i, p in enumerate(keep)], f"{IDX} long, _lg_path string")
    frame = index.join(listed.select(F.col("path").alias("_lg_path"), F.col("content").alias("_lg_content")),
                       "_lg_path")
    return SparkSplit(name, role, modality, "files", frame, n, labels=lab_arr,
                      has_groups=grp_arr is not None, has_timestamps=time_arr is not None,
                      pre_skipped=skipped, names=keep)


# --------------------------------------------------------------------------- signatures in executors
SIGNATURE_SCHEMA = "split string, _lg_idx long, key binary, label string, file string, error string"


def _label_strings(values) -> list:
    # str() of each value: what the local engine compares and digests labels by
    return [None if v is None else str(v) for v in values]


def table_signature_batches(batches, split: str, features: list[str], has_label_column: bool):
    """``mapInPandas`` body: the local engine's row hash of each row (big-endian uint64 bytes)."""
    import pandas as pd

    from ..signatures.exact import frame_row_hashes

    columns = sorted(features)
    for pdf in batches:
        if not len(pdf):
            continue
        # = row_hashes(canonical_columns(...)) (the local exact check's hashes), without the
        # canonical float64 / object copy of the batch
        hashes = frame_row_hashes(pdf[features].reset_index(drop=True), columns)
        raw = hashes.astype(">u8").tobytes()  # big-endian: byte order sorts as the numbers do
        yield pd.DataFrame({"split": split, IDX: pdf[IDX].to_numpy(np.int64),
                            "key": [raw[k:k + 8] for k in range(0, len(raw), 8)],
                            "label": _label_strings(pdf[LABEL].to_numpy(object)) if has_label_column else None,
                            "file": None, "error": None})


def item_signature_batches(batches, split: str, modality: str, kind: str, kinds: list[str]):
    """``mapInPandas`` body: canonical items and the registry's signatures, as the local store does.

    ``key`` is the ``digest`` signature; other kinds go to ``sig_<kind>`` columns (raw array bytes).
    Unreadable samples get ``error`` (the same reasons the local engine records).
    """
    import tempfile

    import pandas as pd

    from ..errors import SampleError
    from ..signatures import get_signature
    from ..sources import canonical_item
    from ..sources.base import FileSource
    from ..sources.readers import READERS

    if any(k != "digest" for k in kinds):
        from ..checks.similarity import load_backends

        load_backends()  # the similarity backends import the modules that register their signatures
    specs = {k: get_signature(modality, k) for k in kinds}
    reader = READERS.get(modality)
    for pdf in batches:
        if not len(pdf):
            continue
        out = {"split": [], IDX: [], "key": [], "label": [], "file": [], "error": []}
        for k in kinds:
            if k != "digest":
                out[f"sig_{k}"] = []
        tmp = tempfile.mkdtemp(prefix="leakguard-") if "_lg_content" in pdf else None
        for pos in range(len(pdf)):
            i = int(pdf[IDX].iat[pos])
            file = str(pdf["_lg_path"].iat[pos]) if "_lg_path" in pdf else None
            values, error = {}, None
            try:
                if kind == "items":
                    item = pickle.loads(pdf["_lg_payload"].iat[pos])
                    if isinstance(item, _Unreadable):
                        raise SampleError(item.reason)
                elif tmp is not None:  # bytes Spark read (s3a:// ...): decode with the same reader
                    local = Path(tmp) / f"item{Path(file).suffix}"
                    local.write_bytes(bytes(pdf["_lg_content"].iat[pos]))
                    try:
                        item = FileSource([local], modality, reader).load(0)
                    except SampleError as err:
                        raise SampleError(err.reason.replace(str(local), file)) from None
                else:
                    item = FileSource([Path(file)], modality, reader).load(0)
                item = canonical_item(item, modality)
                for k in kinds:
                    values[k] = specs[k].fn(item)
            except SampleError as err:
                error = err.reason
            except (ValueError, TypeError, MemoryError) as err:
                error = f"{type(err).__name__}: {err}"
            out["split"].append(split)
            out[IDX].append(i)
            out["file"].append(file)
            out["error"].append(error)
            out["label"].append(None)
            out["key"].append(values.get("digest") if error is None else None)
            for k in kinds:
                if k != "digest":
                    v = values.get(k)
                    out[f"sig_{k}"].append(None if v is None else np.ascontiguousarray(v).tobytes())
        if tmp is not None:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        yield pd.DataFrame(out)


def signature_frame(sp: SparkSplit, kinds: list[str]):
    """The split's per-sample signatures (schema ``SIGNATURE_SCHEMA`` + ``sig_<kind> binary``)."""
    from pyspark.sql import functions as F

    name = sp.name
    if sp.kind == "table":
        features, has_col = list(sp.features), sp.label_column
        return sp.frame.mapInPandas(
            lambda it: table_signature_batches(it, name, features, has_col), SIGNATURE_SCHEMA)
    extra = "".join(f", sig_{k} binary" for k in kinds if k != "digest")
    modality, kind = sp.modality, sp.kind
    out = sp.frame.mapInPandas(
        lambda it: item_signature_batches(it, name, modality, kind, kinds), SIGNATURE_SCHEMA + extra)
    return out.withColumn("label", F.col("label").cast("string"))


def canonical_cell_bytes(columns: dict) -> list[bytes]:
    """Each row of a canonical frame as bytes: equal bytes exactly when every value is equal.

    Floats are canonical (one NaN, no -0.0), so byte equality is value equality with NaN == NaN,
    the rule the local check verifies hash matches by.
    """
    parts = []
    n = len(next(iter(columns.values()))) if columns else 0
    for values in columns.values():
        values = np.asarray(values)
        if values.dtype.kind in "fiu":
            raw = np.ascontiguousarray(values.astype("<f8" if values.dtype.kind == "f" else "<i8"))
            parts.append([b"n" + raw[k:k + 1].tobytes() for k in range(len(raw))])
        else:
            enc = [str(v).encode("utf-8", "surrogatepass") for v in values]
            parts.append([b"s" + len(e).to_bytes(8, "little") + e for e in enc])
    return [b"".join(cells) for cells in zip(*parts)] if parts else [b""] * n


def table_verify_batches(batches, features: list[str]):
    """``mapInPandas`` body: canonical cell bytes of candidate rows (verification of hash matches)."""
    import pandas as pd

    from ..signatures.exact import canonical_columns

    columns = sorted(features)
    for pdf in batches:
        if not len(pdf):
            continue
        feats = pdf[features].reset_index(drop=True)
        yield pd.DataFrame({"split": pdf["split"].to_numpy(object), IDX: pdf[IDX].to_numpy(np.int64),
                            "cells": canonical_cell_bytes(canonical_columns(feats, columns))})


# --------------------------------------------------------------------------- exact duplicates
def duplicated_samples(spark, sigs, splits: dict[str, SparkSplit], tabular: bool):
    """pandas frame (split, _lg_idx, key, label) of samples whose key another sample shares.

    One shuffle of the keys over all samples (the hash join); for tables the candidates are
    verified on their canonical cells, and ``key`` becomes hash + cells.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    keyed = sigs.where(F.col("key").isNotNull()).select("split", IDX, "key", "label")
    # one shuffle of the keys: the samples whose key another sample shares (a groupBy count and a
    # semi-join back would shuffle the keys twice)
    shared = F.count(F.lit(1)).over(Window.partitionBy("key"))
    dup = keyed.withColumn("_lg_n", shared).where(F.col("_lg_n") > 1).drop("_lg_n").toPandas()
    if tabular and len(dup):
        # the candidates are few: their (split, index) go to the executors as a broadcast, so the
        # re-read of the rows is filtered where it is read (no shuffle of every row)
        features = next(iter(splits.values())).features
        wanted = spark.createDataFrame(dup[["split", IDX]].astype({IDX: np.int64}), f"split string, {IDX} long")
        rows = None
        for sp in splits.values():
            part = sp.frame.select(F.lit(sp.name).alias("split"), IDX, *[F.col(f"`{c}`") for c in features])
            rows = part if rows is None else rows.unionByName(part)
        rows = rows.join(F.broadcast(wanted), ["split", IDX], "left_semi")
        cells = rows.mapInPandas(lambda it: table_verify_batches(it, features),
                                 f"split string, {IDX} long, cells binary").toPandas()
        dup = dup.merge(cells, on=["split", IDX], how="inner")
        dup["key"] = [bytes(k) + bytes(c) for k, c in zip(dup["key"], dup["cells"])]
        dup = dup[["split", IDX, "key", "label"]]
    return dup


def exact_findings(dup, splits: dict[str, SparkSplit], train: str, modality: str, severity) -> list:
    """The exact_duplicate findings from the duplicated samples, as the local check builds them."""
    import pandas as pd

    from ..search import duplicate_groups, hash_join

    keys = pd.Series([bytes(k) for k in dup["key"]], dtype=object)
    codes = pd.factorize(keys, sort=True)[0] if len(dup) else np.zeros(0)
    dup = dup.assign(code=np.asarray(codes, dtype=np.int64))
    per = {}
    for name in splits:
        part = dup[dup["split"] == name].sort_values(IDX, kind="stable")
        per[name] = (part[IDX].to_numpy(np.int64), part["code"].to_numpy(np.int64), part["label"].to_numpy(object))
    findings = []
    order = [train] + [n for n in splits if n != train]
    for a_pos, a in enumerate(order):
        for b in order[a_pos + 1:]:
            pb, pa = hash_join(per[a][1], per[b][1])
            if not len(pb):
                continue
            ia, ib = per[a][0][pa], per[b][0][pb]
            conflicts = _label_conflicts(splits[a], per[a], pa, splits[b], per[b], pb)
            findings.append(exact_cross_finding(
                a, ia, b, ib, n_b=splits[b].n, modality=modality, involves_train=a == train,
                severity=severity, conflicts=conflicts))
    for name in splits:
        groups = [per[name][0][g] for g in duplicate_groups(per[name][1])]
        if groups:
            findings.append(exact_within_finding(name, groups, severity))
    return findings


def _label_conflicts(sa: SparkSplit, pa_rows, pa, sb: SparkSplit, pb_rows, pb):
    """The local check's label_conflicts, on the labels of the duplicated samples only."""
    try:
        from ..checks.exact import label_conflicts
    except ImportError:  # an older check without label conflicts
        return None

    def labels_at(sp, rows, pos):
        if sp.labels is not None:
            return np.asarray(sp.labels, dtype=object)[rows[0][pos]]
        if sp.label_column:
            return rows[2][pos]
        return None

    la, lb = labels_at(sa, pa_rows, pa), labels_at(sb, pb_rows, pb)
    if la is None or lb is None:
        return None
    k = np.arange(len(pa))
    out = label_conflicts(_Labelled(la), k, _Labelled(lb), k)
    if out:  # positions back to sample indices
        ia, ib = pa_rows[0][pa], pb_rows[0][pb]
        out["pairs"] = [[int(ia[j]), int(ib[j]), x, y] for j, _, x, y in out["pairs"]]
    return out


@dataclass
class _Labelled:
    labels: np.ndarray


# --------------------------------------------------------------------------- banded candidate search
@dataclass(frozen=True)
class BandLayout:
    """How a code column is cut into bands for the equi-join.

    ``kind="hamming"``: the code is ``n_bands * band_bytes`` bytes. Two codes within ``radius``
    bits differ in at most ``radius // n_bands`` bits of some band (pigeonhole), so the join
    finds every such pair when the right side also lists each band value with up to
    ``probe_bits = radius // n_bands`` bits flipped (multi-index hashing, as
    :mod:`leakguard.search.hamming` does locally). With ``n_bands >= radius + 1`` no probes are
    needed. ``kind="minhash"``: the code is ``n_bands * rows`` hash values of ``value_bytes``
    bytes each (LSH banding); a pair of Jaccard similarity ``s`` shares a band with probability
    ``1 - (1 - s**rows)**n_bands``.

    Band width sets the cost: uniform codes put ``n / 2**band_bits`` samples in each bucket, so
    bands of about ``log2(n)`` bits keep random candidates near one per probe.
    """

    kind: str
    n_bands: int
    code_bits: int = 0        # hamming: bits per code (bands split them as evenly as possible)
    rows: int = 0             # minhash: hash values per band
    value_bytes: int = 8      # minhash: bytes per hash value
    radius: int = 0           # hamming: largest distance kept
    min_similarity: float = 0.0  # minhash: smallest agreeing share kept

    @classmethod
    def hamming(cls, code_bits: int, radius: int, n_bands: int | None = None,
                n_codes: int | None = None) -> "BandLayout":
        """Bands for a ``code_bits`` code (whole bytes) and search ``radius``.

        ``n_bands=None``: with ``n_codes`` the count the local search would pick
        (:func:`leakguard.search.hamming.best_substrings`, 64-bit codes), else ``radius + 1``
        bands, which need no probes. Bands are at most 32 bits wide.
        """
        if code_bits % 8 or code_bits <= 0:
            raise ValueError(f"codes must be whole bytes, got {code_bits} bits")
        if n_bands is None:
            if n_codes is not None and code_bits == 64:
                from .hamming import best_substrings

                n_bands = best_substrings(int(n_codes), int(radius), max_width=32)
            else:
                n_bands = min(radius + 1, code_bits)
        n_bands = max(int(n_bands), -(-code_bits // 32))
        if n_bands > code_bits:
            raise ValueError(f"a {code_bits}-bit code cannot be cut into {n_bands} bands")
        return cls("hamming", n_bands, code_bits=code_bits, radius=radius)

    @classmethod
    def minhash(cls, n_hashes: int, n_bands: int, min_similarity: float, value_bytes: int = 8) -> "BandLayout":
        if n_hashes % n_bands:
            raise ValueError(f"{n_hashes} hash values do not cut into {n_bands} equal bands")
        return cls("minhash", n_bands, rows=n_hashes // n_bands, value_bytes=value_bytes,
                   min_similarity=min_similarity)

    def band_bits(self) -> list[tuple[int, int]]:
        """(first bit, end bit) of each Hamming band, most significant bit of the first byte = 0."""
        edges = np.linspace(0, self.code_bits, self.n_bands + 1).round().astype(int)
        return list(zip(edges[:-1].tolist(), edges[1:].tolist()))

    @property
    def probe_bits(self) -> int:
        return self.radius // self.n_bands if self.kind == "hamming" else 0

    def probe_masks(self, width: int) -> list[int]:
        """XOR masks of a ``width``-bit band value's probes: every mask of ``probe_bits`` or fewer bits."""
        from itertools import combinations

        masks = [0]
        for r in range(1, min(self.probe_bits, width) + 1):
            masks += [sum(1 << b for b in c) for c in combinations(range(width), r)]
        return masks


def _code_words(col, n_bits: int) -> list:
    """A binary code column as unsigned 32-bit words (longs), most significant first."""
    from pyspark.sql import functions as F

    return [F.conv(F.hex(F.substring(col, 4 * k + 1, 4)), 16, 10).cast("long")
            for k in range(-(-n_bits // 32))]


def _bit_range(words: list, n_bits: int, start: int, end: int):
    """Bits ``start..end-1`` of the code as a long (at most 32 bits, from at most two words)."""
    from pyspark.sql import functions as F

    value = None
    for j, word in enumerate(words):
        w_lo, w_hi = 32 * j, min(32 * (j + 1), 8 * (-(-n_bits // 8)))
        lo, hi = max(start, w_lo), min(end, w_hi)
        if lo >= hi:
            continue
        word_bits = w_hi - w_lo  # the last word may be shorter than 32 bits
        part = F.shiftright(word, word_bits - (hi - w_lo)).bitwiseAND(F.lit((1 << (hi - lo)) - 1))
        value = part if value is None else F.shiftleft(value, hi - lo).bitwiseOR(part)
    return value


def _xor_probe(k: int):
    """The lambda of one band's probes (a one-argument function: Spark reads its arity)."""
    from pyspark.sql import functions as F

    return lambda m: F.struct(F.lit(k).alias("band"), F.col(f"_lg_b{k}").bitwiseXOR(m).alias("value"))


def band_join(left, right, layout: BandLayout, code: str = "code", same_frame: bool = False,
              max_bucket: int | None = None, where=None):
    """Verified similar pairs between two frames of ``(split, _lg_idx, <code> binary)``.

    One equi-join on ``(band, band value)`` gives the candidates (the right side lists its
    probes, see :class:`BandLayout`); candidates are then scored on the whole code (Hamming
    distance, or the share of agreeing MinHash values) inside Spark and kept within
    ``layout.radius`` / above ``layout.min_similarity``. Returns a DataFrame
    ``split_a, index_a, split_b, index_b, score`` (score: distance in bits, or agreeing share).
    With ``same_frame`` only pairs ``index_a < index_b`` are kept (search inside one split).
    ``max_bucket``: buckets (band, value) holding more left-side members are skipped, as the
    local LSH skips them (``lsh_candidates(max_bucket=...)``): a value every sample shares (blank
    images, boilerplate) would otherwise make the candidates quadratic in one task.
    ``where``: a function of the candidate columns ``(split_a, index_a, split_b, index_b)`` giving
    a boolean Column, applied right after the equi-join (before deduplication and scoring): the
    pairs of several searches can share one join and keep only the combinations each wants.
    Everything runs in the JVM: no Python worker touches the codes.
    """
    from pyspark.sql import functions as F

    if layout.kind == "hamming":
        bands = layout.band_bits()

        def band_columns(frame):
            words = _code_words(F.col(code), layout.code_bits)
            return frame.select("split", IDX, *[_bit_range(words, layout.code_bits, lo, hi).alias(f"_lg_b{k}")
                                                for k, (lo, hi) in enumerate(bands)])

        def entries(probe):
            out = []
            for k, (lo, hi) in enumerate(bands):
                masks = layout.probe_masks(hi - lo) if probe else [0]
                if len(masks) == 1:
                    out.append(F.array(F.struct(F.lit(k).alias("band"), F.col(f"_lg_b{k}").alias("value"))))
                else:  # one literal array of masks per band, XORed in a lambda: a small plan
                    out.append(F.transform(F.array(*[F.lit(m).cast("long") for m in masks]), _xor_probe(k)))
            return F.flatten(F.array(*out))
    else:
        w = layout.rows * layout.value_bytes

        def band_columns(frame):
            return frame.select("split", IDX, *[F.xxhash64(F.substring(F.col(code), k * w + 1, w)).alias(f"_lg_b{k}")
                                                for k in range(layout.n_bands)])

        def entries(probe):
            return F.array(*[F.struct(F.lit(k).alias("band"), F.col(f"_lg_b{k}").alias("value"))
                             for k in range(layout.n_bands)])

    def exploded(frame, side, probe):
        return band_columns(frame).select(
            F.col("split").alias(f"split_{side}"), F.col(IDX).alias(f"index_{side}"),
            F.explode(entries(probe)).alias("b")).select(
            f"split_{side}", f"index_{side}", F.col("b.band").alias("band"), F.col("b.value").alias("value"))

    left_bands = exploded(left, "a", False)
    if max_bucket is not None:
        from pyspark.sql import Window

        size = F.count(F.lit(1)).over(Window.partitionBy("band", "value"))
        left_bands = left_bands.withColumn("_lg_n", size).where(F.col("_lg_n") <= max_bucket).drop("_lg_n")
    cand = left_bands.join(exploded(right, "b", True), ["band", "value"]).select(
        "split_a", "index_a", "split_b", "index_b")
    if same_frame:
        cand = cand.where(F.col("index_a") < F.col("index_b"))
    if where is not None:
        cand = cand.where(where(F.col("split_a"), F.col("index_a"), F.col("split_b"), F.col("index_b")))
    cand = cand.dropDuplicates(["split_a", "index_a", "split_b", "index_b"])
    codes_a = left.select(F.col("split").alias("split_a"), F.col(IDX).alias("index_a"), F.col(code).alias("code_a"))
    codes_b = right.select(F.col("split").alias("split_b"), F.col(IDX).alias("index_b"), F.col(code).alias("code_b"))
    scored = cand.join(codes_a, ["split_a", "index_a"]).join(codes_b, ["split_b", "index_b"])
    if layout.kind == "hamming":
        # whole code as 32-bit words (unsigned, so they fit a long), XOR and popcount in the JVM
        dist = None
        for x, y in zip(_code_words(F.col("code_a"), layout.code_bits), _code_words(F.col("code_b"), layout.code_bits)):
            term = F.bit_count(F.coalesce(x, F.lit(0)).bitwiseXOR(F.coalesce(y, F.lit(0))))
            dist = term if dist is None else dist + term
        scored = scored.withColumn("score", dist.cast("double")).where(F.col("score") <= layout.radius)
    else:
        n = layout.n_bands * layout.rows
        vb = layout.value_bytes
        agree = None
        for k in range(n):
            term = F.when(F.substring("code_a", k * vb + 1, vb) == F.substring("code_b", k * vb + 1, vb), 1).otherwise(0)
            agree = term if agree is None else agree + term
        scored = scored.withColumn("score", agree / F.lit(float(n))).where(F.col("score") >= layout.min_similarity)
    return scored.select("split_a", "index_a", "split_b", "index_b", "score")


# --------------------------------------------------------------------------- digests and skipped samples
def _summary_batches(batches):
    """``mapInPandas`` body over index-sorted partitions: per batch, the keys in order (one blob),
    the label strings and the unreadable samples, so the driver never sees a Row per sample."""
    import pandas as pd

    for pdf in batches:
        if not len(pdf):
            continue
        pdf = pdf.sort_values(["split", IDX], kind="stable")
        for split, part in pdf.groupby("split", sort=False):
            keys = b"".join(bytes(k) if k is not None else b"\0" * 16 for k in part["key"])
            bad = part[part["error"].notna()]
            yield pd.DataFrame({
                "split": [split], "first": [int(part[IDX].iat[0])], "keys": [keys],
                "labels": [pickle.dumps(part["label"].tolist())],
                # in-memory items have no file: None, as the local engine records it (pandas gives NaN)
                "bad": [pickle.dumps(list(zip(bad[IDX].astype(int).tolist(),
                                              [f if isinstance(f, str) else None for f in bad["file"]],
                                              bad["error"].tolist())))]})


def per_sample_summary(sigs, prepared: dict) -> dict[str, dict]:
    """Per split: a digest of its keys in sample order, its label strings, its unreadable samples.

    One job; the key blobs stream to the driver one partition at a time (range partitions come
    back in index order), so the driver holds one partition's keys, not the split's.
    """
    blobs = (sigs.select("split", IDX, "key", "label", "file", "error")
             .repartitionByRange("split", IDX).sortWithinPartitions("split", IDX)
             .mapInPandas(_summary_batches, "split string, first long, keys binary, labels binary, bad binary"))
    out: dict[str, dict] = {}
    for name, sp in prepared.items():
        h = hashlib.blake2b(digest_size=10)
        if sp.kind == "table":
            h.update("\x1f".join(sorted(sp.features)).encode())
        out[name] = {"hasher": h, "labels": [], "bad": [], "last": -1}
    for row in blobs.toLocalIterator(prefetchPartitions=True):
        d = out[row["split"]]
        if row["first"] <= d["last"]:  # never expected: partitions out of order would corrupt the digest
            raise RuntimeError("split digest: key blobs arrived out of order")
        d["last"] = row["first"]
        blob = bytes(row["keys"])
        if prepared[row["split"]].kind == "table":  # local split_digest hashes native-order uint64 row hashes
            blob = np.frombuffer(blob, dtype=">u8").astype("<u8").tobytes()
        d["hasher"].update(blob)
        d["labels"].extend(pickle.loads(row["labels"]))
        d["bad"].extend(pickle.loads(row["bad"]))
    return out


def _numpy_label_width(spark_type, labels: list) -> int:
    """The width numpy's ``astype(str)`` gives the label column the local engine reads.

    Numbers get numpy's fixed width for their type (int64: 21 characters, float64: 32), text
    and booleans with gaps (object columns) the longest label.
    """
    from pyspark.sql import types as T

    has_null = any(v is None or v == "nan" for v in labels)
    numeric = {T.ByteType: np.int8, T.ShortType: np.int16, T.IntegerType: np.int32, T.LongType: np.int64,
               T.FloatType: np.float32, T.DoubleType: np.float64, T.BooleanType: np.bool_}
    for spark_cls, np_type in numeric.items():
        if isinstance(spark_type, spark_cls):
            if has_null and np_type is np.bool_:
                break  # bool with nulls: an object column
            if has_null and np.dtype(np_type).kind in "iu":
                np_type = np.float64  # ints with nulls arrive as floats
            return np.zeros(1, dtype=np_type).astype(str).dtype.itemsize // 4
    return max((len(v) for v in labels), default=1) or 1


def split_digest_on_spark(sp: SparkSplit, summary: dict, label_type=None) -> str:
    """The local engine's split digest (``auditing.split_digest``): keys streamed, then labels."""
    h = summary["hasher"].copy()
    if sp.labels is not None:
        h.update(np.asarray(sp.labels).astype(str).tobytes())
    elif sp.label_column:
        labels = summary["labels"]
        width = _numpy_label_width(label_type, labels)
        h.update(np.array([str(v) for v in labels], dtype=f"<U{width}").tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- previews
class _SparseFrame:
    """Rows of a table by position, for the few rows the report previews."""

    def __init__(self, rows: dict):
        self.rows = rows
        self.iloc = self

    def __getitem__(self, i):
        if i not in self.rows:
            raise ValueError(f"row {i} was not fetched")
        return self.rows[i]


def _previews(spark, findings, splits: dict[str, SparkSplit], max_examples: int) -> dict:
    """The report's previews, chosen and drawn by the local ``build_previews``.

    A first pass with nothing loaded tells which samples it wants; only those are fetched.
    """
    from pyspark.sql import functions as F

    from ..report.previews import build_previews
    from ..sources.base import Source, TabularSource
    from ..splits import Split

    class Fetched(Source):
        def __init__(self, modality, got):
            self.modality = modality
            self.items = {i: v[0] for i, v in got.items()}
            self.names_ = {i: v[1] for i, v in got.items()}

        def __len__(self):
            return len(self.items)

        def load(self, i):
            if i not in self.items:
                raise ValueError(f"sample {i} was not fetched")
            item = self.items[i]
            if isinstance(item, _FailedLoad):
                raise item.err
            return item

        def name(self, i):
            return self.names_.get(i)

    def shells(items):
        return {name: Split(name, TabularSource(_SparseFrame(items.get(name, {}))) if sp.kind == "table"
                            else Fetched(sp.modality, items.get(name, {})))
                for name, sp in splits.items()}

    wanted = build_previews(findings, shells({}), max_examples)
    need: dict[str, list[int]] = {}
    for key in wanted:
        split, _, idx = key.rpartition(":")
        need.setdefault(split, []).append(int(idx))
    items: dict[str, dict] = {}
    for name, idxs in need.items():
        sp = splits[name]
        if sp.local_source is not None:
            src = sp.local_source
            got = {}
            for i in idxs:
                try:
                    got[i] = (src.load(i), src.name(i))
                except Exception as err:  # noqa: BLE001 - the preview shows the error
                    got[i] = (_FailedLoad(err), src.name(i))
            items[name] = got
        elif sp.kind == "table":
            rows = sp.frame.where(F.col(IDX).isin(idxs)).toPandas()
            items[name] = {int(r[IDX]): r[sp.features].rename(None) for _, r in rows.iterrows()}
        else:  # remote files: fetch the bytes, decode locally with the same reader
            rows = sp.frame.where(F.col(IDX).isin(idxs)).toPandas()
            got = {}
            for _, r in rows.iterrows():
                got[int(r[IDX])] = (_decode_remote(sp.modality, r["_lg_path"], r["_lg_content"]), r["_lg_path"])
            items[name] = got
    return build_previews(findings, shells(items), max_examples)


class _FailedLoad:
    def __init__(self, err):
        self.err = err


def _decode_remote(modality, path, content):
    import tempfile

    from ..sources.base import FileSource
    from ..sources.readers import READERS

    with tempfile.TemporaryDirectory(prefix="leakguard-") as tmp:
        local = Path(tmp) / f"item{Path(path).suffix}"
        local.write_bytes(bytes(content))
        try:
            return FileSource([local], modality, READERS[modality]).load(0)
        except Exception as err:  # noqa: BLE001
            return _FailedLoad(err)


# --------------------------------------------------------------------------- the audit
def spark_audit(splits: Mapping, train: str = "train", labels=None, groups=None, timestamps=None,
                modality: str | None = None, checks=None, config=None, **inputs):
    """:func:`leakguard.audit` on Spark; called by ``audit`` when ``config.engine == "spark"``.

    Each split may be: a Parquet file, folder or URI (or a list of them); a list of file paths or
    URIs, or a folder (``s3a://``, ``hdfs://``, anything Spark reads); a Spark DataFrame; or the
    in-memory data the local engine takes (pandas DataFrames, arrays, lists of str).
    """
    from ..auditing import _run_check, _select_checks
    from ..config import AuditConfig
    from .spark_checks import DRIVER_CHECKS, driver_context, runs_on_spark
    from .spark_tabular_checks import TableShell
    from ..report import Report
    from ..splits import Split, Splits

    config = config or AuditConfig(engine="spark")
    started = time.perf_counter()
    if not isinstance(splits, Mapping) or not splits:
        raise InputError("audit() takes a mapping of split name to data, e.g. {'train': ..., 'val': ...}")
    if train not in splits:
        raise InputError(f"the training split {train!r} is not among the splits {list(splits)}")
    if len(splits) < 2:
        raise InputError("audit() needs the training split and at least one evaluation split")
    spark = spark_session(config)
    prepared: dict[str, SparkSplit] = {}
    _phase(spark, "read and index splits")
    for name, data in splits.items():
        name = str(name)
        prepared[name] = prepare_split(spark, name, data, "train" if name == train else "eval", labels=labels,
                                       groups=groups, timestamps=timestamps, modality=modality,
                                       sample_rate=config.sample_rate)
    mods = {s.modality for s in prepared.values() if s.n}
    if len(mods) > 1:
        desc = ", ".join(f"{n}: {s.modality}" for n, s in prepared.items())
        raise InputError(f"the splits hold different kinds of data ({desc}); audit splits of one modality")
    if prepared[train].n == 0:
        raise InputError(f"the training split {train!r} is empty")
    for s in prepared.values():
        if s.n == 0:
            s.modality = prepared[train].modality
    mod = prepared[train].modality
    if mod == "tabular":
        _check_same_columns(prepared, train)
    # the driver's view of the splits: lengths, names, group ids and timestamps (no samples); the
    # group and temporal checks run on it, the others add their links to it
    ctx = driver_context(prepared, train, config, [], groups=groups, timestamps=timestamps, collect=False)
    shell = Splits({n: Split(n, TableShell(s.n) if s.kind == "table" else ctx.splits[n].source,
                             labels=np.zeros(0) if s.has_labels else None,
                             groups=ctx.splits[n].groups, timestamps=ctx.splits[n].timestamps, role=s.role)
                    for n, s in prepared.items()}, train)
    here = [c for c in _available() if runs_on_spark(c, mod)]
    if checks is not None:
        asked = [checks] if isinstance(checks, str) else list(checks)
        not_here = [c for c in asked if c not in here]
        known = set(_available())
        if [c for c in not_here if c in known]:
            raise InputError(f"checks {[c for c in not_here if c in known]} do not run on the Spark engine yet"
                             f" (on {mod} data it runs {here}); run them with engine='local'")
    selected = _select_checks(checks, shell)
    not_run = [c.name for c in selected if c.name not in here]
    selected = [c for c in selected if c.name in here]
    # parts of a check that the Spark engine leaves out (listed in the report); none since group_overlap's
    # scene and passage links run on Spark (leakguard.search.spark_groups)
    local_only: list[str] = []
    if any(c.name in DRIVER_CHECKS for c in selected):  # they read the ids and times themselves
        _phase(spark, "group ids and timestamps to the driver")
        ctx = driver_context(prepared, train, config, [], groups=groups, timestamps=timestamps)
    ctx.shared["inputs"] = inputs  # fitted objects (preprocessing_contamination), as the local engine passes them
    ctx.shared["spark_prepared"] = prepared  # a user embedder reads the splits again (leakguard.search.spark_embedders)
    kinds = set().union(*(c.needs(shell) for c in selected)) | ({"digest"} if mod != "tabular" else set())
    if mod == "image" and any(c.name == "augmented_duplicate" for c in selected):
        from .spark_image import KINDS as IMAGE_KINDS

        # every kind the Spark image check ships to its verification groups, the 128 px keypoint
        # thumbnail included (computed in the signature pass here even where the local engine
        # computes it lazily for the images that reach verification: executors cannot re-read cheaply)
        kinds |= set(IMAGE_KINDS)
    if (mod == "image" and any(c.name == "partial_duplicate" for c in selected)
            and config.options("partial_duplicate").get("resized")):
        from ..similarity.image_align import have_opencv

        if have_opencv():  # the any-scale path's keypoints and thumbnails (as locally: off without OpenCV)
            kinds |= {"partial_kp", "thumb_kp", "shape"}
    if mod == "text" and any(c.name == "semantic_duplicate" for c in selected):
        kinds.add("utf8")  # the canonical text, embedded in the executors (leakguard.search.spark_text_semantic)
    kinds = sorted(kinds)

    from pyspark import StorageLevel

    sigs = None
    for sp in prepared.values():
        extra = [f"sig_{k}" for k in kinds if k != "digest"] if sp.kind != "table" else []
        part = signature_frame(sp, kinds).select("split", IDX, "key", "label", "file", "error", *extra)
        sigs = part if sigs is None else sigs.unionByName(part)
    sigs = sigs.persist(StorageLevel.MEMORY_AND_DISK)
    if any(c.name == "group_overlap" for c in selected):
        from ..checks.groups import ENGINE_LINKS
        from .spark_groups import engine_links

        # the content inference's scene and passage links, searched on Spark from the signatures
        ctx.shared[ENGINE_LINKS] = engine_links(spark, sigs)
    try:
        severity = lambda check, default: config.severity.get(check, default)  # noqa: E731
        findings = []
        for check in selected:
            if check.name == "exact_duplicate":
                _phase(spark, "signatures + exact duplicates (key shuffle, verification)")
                dup = duplicated_samples(spark, sigs, prepared, tabular=mod == "tabular")
                found = exact_findings(dup, prepared, train, mod, severity)
                ctx.links.extend(f.pairs for f in found if len(f.splits) == 2)  # as the local check links them
                findings.extend(found)
            elif ((check.name, mod) in _ON_SPARK or (check.name, "*") in _ON_SPARK
                  or check.name == "augmented_duplicate"):  # (text: runs_on_spark)
                module, func, data, arg = _ON_SPARK.get((check.name, mod), _ON_SPARK.get(
                    (check.name, "*"), ("spark_checks", "text_augmented_on_spark", "sigs", "name")))
                run = getattr(importlib.import_module(f".{module}", __package__), func)
                source = prepared if data == "prepared" else sigs
                findings.extend(_run_check(_OnSpark(check.name, lambda c, run=run, src=source, x=(
                    check if arg == "check" else check.name): run(spark, c, x, src)), ctx))
            else:  # group_overlap, temporal_overlap: the local check on ids, times and links
                _phase(spark, f"{check.name} (driver)")
                findings.extend(_run_check(check, ctx))
        _phase(spark, "split digests and skipped samples")
        summary = per_sample_summary(sigs, prepared)
        splits_info = {}
        for name, sp in prepared.items():
            mine = summary[name]
            skipped = [{**s, "split": name} for s in sp.pre_skipped] + [
                {"split": name, "index": i, "file": f, "reason": r} for i, f, r in mine["bad"]]
            label_type = sp.frame.schema[LABEL].dataType if sp.label_column else None
            splits_info[name] = {"n": sp.n, "modality": sp.modality, "role": sp.role, "skipped": skipped,
                                 "digest": split_digest_on_spark(sp, mine, label_type), "has_labels": sp.has_labels,
                                 "has_groups": sp.has_groups, "has_timestamps": sp.has_timestamps}
    finally:
        sigs.unpersist()
    sc = spark.sparkContext
    meta = {"duration_s": round(time.perf_counter() - started, 3), "modality": mod,
            "checks": [c.name for c in selected], "config": config.to_dict(),
            "spark": {"version": spark.version, "master": sc.master,
                      "default_parallelism": sc.defaultParallelism, "not_run": not_run,
                      "local_only": local_only, **ctx.shared.get("spark_meta", {})}}
    _phase(spark, "previews")
    samples = _previews(spark, findings, prepared, config.max_examples)
    spark.sparkContext.setJobDescription(None)
    return Report(findings, splits_info, train, samples, meta)


# the similarity checks that run on Spark, by (check, modality): the module (leakguard.search.*) and
# function that run them, what they read (the signatures or the prepared splits) and whether they
# take the check object or its name. Text augmented_duplicate is spark_checks.text_augmented_on_spark.
_ON_SPARK = {
    ("augmented_duplicate", "image"): ("spark_image", "image_augmented_on_spark", "sigs", "name"),
    ("semantic_duplicate", "image"): ("spark_semantic", "image_semantic_on_spark", "sigs", "name"),
    ("partial_duplicate", "image"): ("spark_image_partial", "image_partial_on_spark", "sigs", "name"),
    ("semantic_duplicate", "tabular"): ("spark_tabular", "tabular_semantic_on_spark", "prepared", "name"),
    ("augmented_duplicate", "tabular"): ("spark_tabular", "tabular_augmented_on_spark", "prepared", "name"),
    ("augmented_duplicate", "series"): ("spark_tabular", "series_augmented_on_spark", "sigs", "name"),
    ("semantic_duplicate", "audio"): ("spark_audio", "audio_semantic_on_spark", "sigs", "name"),
    ("augmented_duplicate", "audio"): ("spark_audio", "audio_similarity_on_spark", "sigs", "check"),
    ("partial_duplicate", "audio"): ("spark_audio", "audio_similarity_on_spark", "sigs", "check"),
    ("partial_duplicate", "text"): ("spark_text_partial", "text_partial_on_spark", "sigs", "name"),
    # the local check's decisions on the driver: column statistics (leakguard.search.spark_preprocessing) or
    # screened rows (leakguard.search.spark_tabular_checks) from Spark; preprocessing reads the fitted objects
    # on any modality, the data on tables
    ("preprocessing_contamination", "*"): ("spark_preprocessing", "preprocessing_on_spark", "prepared", "name"),
    ("target_leakage", "tabular"): ("spark_tabular_checks", "target_on_spark", "prepared", "name"),
    ("oversampling_leakage", "tabular"): ("spark_tabular_checks", "oversampling_on_spark", "prepared", "name"),
    ("oversampling_leakage", "series"): ("spark_tabular_checks", "oversampling_on_spark", "prepared", "name"),
    ("semantic_duplicate", "text"): ("spark_text_semantic", "text_semantic_on_spark", "sigs", "name"),
}


@dataclass
class _OnSpark:
    """A check whose search runs on Spark, shaped for the local ``_run_check`` (same failure handling)."""

    name: str
    fn: object

    def run(self, ctx):
        return self.fn(ctx)


def _available():
    from ..checks import available_checks

    return available_checks()


def _check_same_columns(prepared: dict[str, SparkSplit], train: str) -> None:
    columns = set(prepared[train].features)
    for name, sp in prepared.items():
        have = set(sp.features or [])
        missing, extra = columns - have, have - columns
        if missing or extra:
            raise InputError(f"split {name!r} has different feature columns than {train!r}: "
                             f"missing {sorted(missing)[:10]}, extra {sorted(extra)[:10]}")
        sp.features = list(prepared[train].features)  # one column order for every split
