"""The learning core's Spark job: omen history files in, one omen model file out.

    python -m learning.train --input PATH... --output FILE [--master local[2]]
    spark-submit learning/train.py --input PATH... --output FILE

Reads the history files on the executors (one task per file), fits every series with a
grouped-map pandas UDF (`groupBy("key").applyInPandas`), and writes the fitted state and
parameters in omen's model schema (see learning/README.md).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
import zipfile
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script (spark-submit learning/train.py): make the package importable and drop
    # the script's own folder, whose module names would shadow nothing but are not meant to
    # be top-level.
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]
    sys.path.insert(0, str(_here.parent))
    __package__ = "learning"  # noqa: A001

from learning import files  # noqa: E402
from learning.fit import fit_group  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m learning.train",
        description="Fit omen's per-series models from exported histories with Spark.")
    ap.add_argument("--input", nargs="+", required=True, metavar="PATH",
                    help="history files (Arrow IPC, Parquet) or folders of them")
    ap.add_argument("--output", required=True, metavar="FILE",
                    help="the model file to write (Arrow IPC file, omen schema v2)")
    ap.add_argument("--master", default=None,
                    help="Spark master (default: spark-submit's, else local[2])")
    ap.add_argument("--partitions", type=int, default=None,
                    help="shuffle partitions (default: 2 × the default parallelism)")
    return ap.parse_args(argv)


def package_zip() -> bytes:
    """The `learning` package as a zip, shipped to executors with addPyFile."""
    root = Path(__file__).resolve().parent
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(root.glob("*.py")):
            z.write(f, f"learning/{f.name}")
    return buf.getvalue()


def session(master: str | None, partitions: int | None):
    """The Spark session; in local mode small and quiet."""
    from pyspark.sql import SparkSession

    if not _submitted():
        # Local mode: the Python workers use this interpreter (the project's .venv), not
        # whatever `python3` is first on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if not _submitted() and (master or "local").startswith("local"):
        # One machine: bind to loopback instead of resolving the host name (slow, and wrong
        # on machines whose name resolves to a loopback address).
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder.appName("omen-learning")
    if master:
        builder = builder.master(master)
    elif not _submitted():
        builder = builder.master("local[2]")
    builder = builder.config("spark.sql.execution.arrow.pyspark.enabled", "true")
    builder = builder.config("spark.ui.showConsoleProgress", "false")
    if partitions:
        builder = builder.config("spark.sql.shuffle.partitions", str(partitions))
    spark = builder.getOrCreate()
    if not partitions:
        spark.conf.set("spark.sql.shuffle.partitions",
                       str(2 * spark.sparkContext.defaultParallelism))
    return spark


def _submitted() -> bool:
    # Under spark-submit the JVM starts Python and hands it the gateway; its master (from
    # --master or spark-defaults) must not be overridden.
    return "PYSPARK_GATEWAY_PORT" in os.environ


def ship_package(spark, workdir: Path) -> None:
    """Makes `learning` importable on the executors (a cluster has no checkout)."""
    path = workdir / "omen_learning.zip"
    path.write_bytes(package_zip())
    spark.sparkContext.addPyFile(str(path))


def train(spark, inputs, output: str) -> dict:
    """Runs the job; returns counts and timings for the caller to print."""
    import tempfile

    t0 = time.monotonic()
    paths = files.expand_inputs(inputs)
    with tempfile.TemporaryDirectory(prefix="omen-learning-") as tmp:
        ship_package(spark, Path(tmp))
        listing = spark.createDataFrame([(p,) for p in paths], "path string")
        history = listing.repartition(len(paths)).mapInArrow(
            files.read_partition, files.SPARK_HISTORY_DDL)
        models = history.groupBy("key").applyInPandas(fit_group, files.SPARK_MODELS_DDL)
        table = files.to_models_table(models.toArrow())
    files.write_models(table, output)
    return {"files": len(paths), "series": table.num_rows, "seconds": time.monotonic() - t0}


def main(argv=None) -> int:
    args = parse_args(argv)
    spark = session(args.master, args.partitions)
    spark.sparkContext.setLogLevel("WARN")
    try:
        out = train(spark, args.input, args.output)
    except files.HistoryError as e:
        print(f"omen-learning: {e}", file=sys.stderr)
        return 2
    finally:
        spark.stop()
    print(f"omen-learning: {out['series']} series from {out['files']} file(s) "
          f"in {out['seconds']:.1f} s -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
