"""preprocessing_contamination on Spark at 1M rows x 10 columns from Parquet (800k train + 200k val,
8 continuous + 2 integer columns, seed 0): the Spark audit
twice (cold, warm), what reached the driver (report.meta["spark"]["preprocessing"]), then the local
engine on the same frames and report equality.

    .venv/bin/python benchmarks/bench_spark_preprocessing.py 1000000 [--plant]

--plant: also standardise x0, x1 over train + val and mean-impute i0 over the union (kept columns:
two by order statistics, one value table), so the kept-column work is measured too.
"""
import json, os, resource, sys, time
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
import numpy as np, pandas as pd
import leakguard as lg
from pyspark.sql import SparkSession

n = int(sys.argv[1])
plant = "--plant" in sys.argv
spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
         .config("spark.sql.shuffle.partitions", "4").config("spark.driver.memory", "2g")
         .config("spark.sql.session.timeZone", "UTC").config("spark.ui.showConsoleProgress", "false").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
rng = np.random.default_rng(0)
X = pd.DataFrame(rng.normal(size=(n, 8)), columns=[f"x{i}" for i in range(8)])
X["i0"] = rng.integers(0, 100, n); X["i1"] = rng.integers(0, 1000, n)
if plant:
    for c in ("x0", "x1"):
        X[c] = (X[c] - X[c].mean()) / X[c].std(ddof=0)
    holes = X["i0"].astype(float).mask(rng.random(n) < 0.08)
    X["i0"] = holes.fillna(holes.mean())
cut = int(0.8 * n)
import tempfile
d = tempfile.mkdtemp(prefix="lg-bench-preprocessing-")
X.iloc[:cut].to_parquet(f"{d}/train.parquet"); X.iloc[cut:].to_parquet(f"{d}/val.parquet")


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


for rep in range(2):
    t, c0 = time.time(), cpu()
    r = lg.audit({"train": f"{d}/train.parquet", "val": f"{d}/val.parquet"}, checks=["preprocessing_contamination"],
                 config=lg.AuditConfig(engine="spark", spark=spark, progress=False))
    print(f"spark audit {'cold' if rep == 0 else 'warm'} {time.time() - t:.1f}s wall, driver CPU {cpu() - c0:.1f}s, "
          f"findings {[(f.extra.get('kind'), f.features) for f in r.findings]}", flush=True)
print("meta", json.dumps(r.meta["spark"].get("preprocessing")), flush=True)
t, c0 = time.time(), cpu()
r2 = lg.audit({"train": X.iloc[:cut], "val": X.iloc[cut:]}, checks=["preprocessing_contamination"],
              config=lg.AuditConfig(progress=False))
print(f"local {time.time() - t:.1f}s wall, {cpu() - c0:.1f} CPU-s, findings {len(r2.findings)}")
a, b = json.loads(r.to_json()), json.loads(r2.to_json())
print("findings equal:", a["findings"] == b["findings"])
