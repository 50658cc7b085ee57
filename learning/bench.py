"""Training throughput in Spark local mode: series fitted per second on generated histories.

    .venv/bin/python -m learning.bench [--series 10000] [--days 3] [--files 4] [--master local[2]]

Prints one line per run; the figure for the README is `series/s`. The time covers the whole
job (reading the files, the shuffle by key, fitting, collecting and writing the model file),
not the Spark session start.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

from learning import train
from learning.fit import fit_group
from learning.files import write_history
from learning.synth import generate


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m learning.bench")
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--days", type=float, default=3.0)
    ap.add_argument("--step-ms", type=int, default=300_000)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--fit-sample", type=int, default=500,
                    help="series whose UDF body is also timed alone, in CPU seconds")
    args = ap.parse_args(argv)
    fit_only(args)

    with tempfile.TemporaryDirectory(prefix="omen-bench-") as tmp:
        t0 = time.monotonic()
        folder = Path(tmp) / "history"
        folder.mkdir()
        per = math.ceil(args.series / args.files)
        rows = 0
        for i in range(args.files):
            n = min(per, args.series - i * per)
            if n <= 0:
                break
            table, _ = generate(n_series=n, days=args.days, step_ms=args.step_ms, seed=100 + i)
            write_history(table, folder / f"part-{i:03}.arrow")
            rows += table.num_rows
        print(f"generated {args.series} series, {rows} points "
              f"({args.days} days at {args.step_ms // 1000} s) in {time.monotonic() - t0:.1f} s")
        spark = train.session(args.master, None)
        spark.sparkContext.setLogLevel("ERROR")
        try:
            for run in range(args.runs):
                out = train.train(spark, [str(folder)], str(Path(tmp) / "models.arrow"))
                print(f"run {run + 1}: {out['series']} series in {out['seconds']:.1f} s = "
                      f"{out['series'] / out['seconds']:.0f} series/s "
                      f"({args.master}, {spark.sparkContext.defaultParallelism} cores, "
                      f"load average {os.getloadavg()[0]:.1f})")
        finally:
            spark.stop()


def fit_only(args) -> None:
    """The UDF body alone (pandas group in, model row out) in CPU time on one core: the cost
    of a fit without Spark, and unaffected by other load on the machine."""
    if args.fit_sample <= 0:
        return
    table, _ = generate(n_series=args.fit_sample, days=args.days, step_ms=args.step_ms, seed=99)
    pdf = table.to_pandas()
    pdf["key"] = pdf["key"].to_numpy().view("int64")
    groups = [g for _, g in pdf.groupby("key", sort=False)]
    fit_group(groups[0])  # compiles the kernel
    t0 = time.process_time()
    for g in groups:
        fit_group(g)
    cpu = time.process_time() - t0
    print(f"fit alone: {len(groups)} series in {cpu:.2f} CPU s = "
          f"{1000 * cpu / len(groups):.1f} ms/series = {len(groups) / cpu:.0f} series/s per core")


if __name__ == "__main__":
    main()
