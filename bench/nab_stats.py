#!/usr/bin/env python3
"""Per-file anomaly_score statistics of an `omen replay` output folder (tuning aid): median,
99th percentile, max, and the largest score in the scored part outside the labelled windows."""
import csv, json, os, sys, datetime as dt
out = sys.argv[1]
nab = sys.argv[2] if len(sys.argv) > 2 else "/work/shared/nab"
windows = json.load(open(os.path.join(nab, "labels/combined_windows.json")))
def parse(t): return dt.datetime.strptime(t.split(".")[0], "%Y-%m-%d %H:%M:%S")
for key in sorted(windows):
    rows = list(csv.DictReader(open(os.path.join(out, key))))
    n = len(rows); prob = min(int(0.15 * n), 750)
    wins = [(parse(a), parse(b)) for a, b in windows[key]]
    s = [float(r["anomaly_score"]) if r["anomaly_score"] else 0.0 for r in rows]
    inside = [any(a <= parse(r["timestamp"]) <= b for a, b in wins) for r in rows]
    out_s = sorted(s[i] for i in range(prob, n) if not inside[i])
    in_max = [max([s[i] for i in range(prob, n) if any(a <= parse(rows[i]["timestamp"]) <= b for _ in [0])] or [0]) for a, b in wins]
    q = lambda xs, p: xs[min(len(xs) - 1, int(p * len(xs)))] if xs else 0
    print("%-55s med %6.2f p99 %7.2f maxout %9.2f  win-max %s" % (key[:55], q(out_s, .5), q(out_s, .99), out_s[-1] if out_s else 0, " ".join("%.1f" % m for m in in_max)))
