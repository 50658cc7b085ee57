#!/usr/bin/env python3
"""Tuning aid for bench/nab.sh: for an `omen replay` output folder, how many NAB windows reach
each anomaly_score threshold (their best row) and how many rows outside the windows do (false
positives), after the probationary period; then the files with the most false positives at
score >= 2. Usage: bench/nab_curve.py OUTDIR/results [NAB_DIR]"""
import collections
import csv
import json
import os
import sys

out = sys.argv[1]
nab = sys.argv[2] if len(sys.argv) > 2 else "/work/shared/nab"
windows = json.load(open(os.path.join(nab, "labels", "combined_windows.json")))
best, outside = [], []
for key, wins in sorted(windows.items()):
    rows = list(csv.DictReader(open(os.path.join(out, key))))
    n = len(rows)
    start = min(int(0.15 * n), 750)
    ts = [r["timestamp"] for r in rows]
    score = [float(r["anomaly_score"] or 0) for r in rows]
    inside = [any(a[:19] <= t <= b[:19] for a, b in wins) for t in ts]
    for a, b in wins:
        best.append(max([score[i] for i in range(start, n) if a[:19] <= ts[i] <= b[:19]] or [0]))
    outside += [(score[i], key) for i in range(start, n) if not inside[i]]
for t in [1, 1.2, 1.4, 1.7, 2, 2.5, 3, 4, 6, 10]:
    print("score >= %4.1f: windows %2d/%d, rows outside windows %5d"
          % (t, sum(m >= t for m in best), len(best), sum(s >= t for s, _ in outside)))
print(collections.Counter(k for s, k in outside if s >= 2).most_common(10))
