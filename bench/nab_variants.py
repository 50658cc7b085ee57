#!/usr/bin/env python3
"""Causal score transforms measured on NAB and not built (the README's "measured and not
kept" figures): each reads an `omen replay` output folder row by row, in file order, using
only rows before the current one, rewrites `anomaly_score`, and writes a folder that
`../shared/nab/score.py` scores (as nab_score = s / (1 + s), like omen replay).

    bench/nab_variants.py IN OUT VARIANT [ARG ...]
    python3 ../shared/nab/score.py OUT

IN is `OUTDIR/results` of `bench/nab.sh OUTDIR` at some commit; the README names which:
  before the range rule       git checkout ea42d95   (variants range, range_half, range_decay,
                                                      familiarity, score_record)
  with the raw-value range    git checkout ebda849   (recent_tier, jump_record, forecast_range,
                                                      refractory)
  with the deseasonalised range, before the stuck and routine rules were built
                                     git checkout fd184a8 (stuck, routine)

Variants and their arguments (all scores floored at `floor` where a rule fires):
  range MARGIN FLOOR AFTER NEED [UP DOWN]   value outside the range of earlier values by
                                            MARGIN x range, after AFTER rows, score >= NEED
  range_half K FLOOR AFTER NEED             the same with a margin of K interval half-widths
  range_decay MARGIN FLOOR AFTER NEED EPS   range decaying towards the forecast by EPS a row
  familiarity DECAY C AFTER                 excess over 1 damped by 1 + C*n (n a DECAY-ed count of
                                            earlier rows in the same signed size class), then
                                            the raw range (1 %, floor 4, NEED 0.5)
  recent_tier MARGIN FLOOR AFTER NEED EPS   a second tier: outside a decaying recent range
  score_record MULT AFTER NEED              score above MULT x the largest earlier score, and
                                            the raw range as in familiarity
  jump_record TOL FLOOR AFTER NEED          |x - previous x| above every earlier jump by TOL
  forecast_range MARGIN FLOOR AFTER NEED    the forecast outside the range of earlier forecasts
  refractory T R                            scores below 4 capped at 1 for R rows after one >= T
  stuck K PMAX RATE [EVERY]                 K exact repeats of a value in a series whose repeat
                                            rate (EMA at RATE) was below PMAX: floor 4, once
                                            (EVERY 1: on every further repeat too)
  routine T TOL DAYS S                      a score >= T that comes 1..DAYS days after the
                                            previous one >= T, within TOL minutes of a whole
                                            day, for the S-th time in a row or more: capped
                                            at 1 (rows need ISO-8601 timestamps)
"""
import csv
import datetime
import os
import sys


def num(row, key):
    return float(row[key]) if row.get(key) else None


class Range:
    """The running range of earlier values; `outside` asks before `take`."""

    def __init__(self):
        self.lo = self.hi = None

    def outside(self, x, margin):
        return self.lo is not None and (x > self.hi + margin or x < self.lo - margin)

    def width(self):
        return self.hi - self.lo

    def take(self, x):
        self.lo = x if self.lo is None else min(self.lo, x)
        self.hi = x if self.hi is None else max(self.hi, x)


def transform(rows, variant, a):
    """Yields the new score of each row."""
    rng, recent = Range(), Range()
    n, last_hit, best, jump_max, prev = 0, -(10**9), 0.0, 0.0, None
    counts, run, rep, rep_before = {}, 0, 0.0, 0.0
    surprise, streak = None, 0
    for r in rows:
        v = float(r["value"])
        s = num(r, "anomaly_score") or 0.0
        fc = num(r, "forecast")
        c = v if fc is None else fc
        if variant == "range":
            margin, floor, after, need = a[:4]
            up, down = (a[4], a[5]) if len(a) > 4 else (1, 1)
            if n >= after and s >= need and rng.lo is not None:
                m = margin * rng.width()
                if (up and v > rng.hi + m) or (down and v < rng.lo - m):
                    s = max(s, floor)
            rng.take(v)
        elif variant == "range_half":
            k, floor, after, need = a
            half = (num(r, "upper") - num(r, "lower")) / 2 if r.get("upper") else 0.0
            if n >= after and s >= need and rng.outside(v, k * half):
                s = max(s, floor)
            rng.take(v)
        elif variant in ("range_decay", "recent_tier"):
            margin, floor, after, need, eps = a
            target = rng if variant == "range_decay" else recent
            tier = variant == "range_decay" or s < 4
            if n >= after and s >= need and tier and target.lo is not None:
                if target.outside(v, margin * target.width()):
                    s = max(s, floor)
            if target.lo is not None:
                target.hi -= (target.hi - c) * eps if target.hi > c else 0
                target.lo += (c - target.lo) * eps if target.lo < c else 0
            target.take(v)
        elif variant == "familiarity":
            decay, weight, after = a
            edges = [1.4, 2, 3, 5, 8]
            s0 = s
            for key in counts:
                counts[key] *= decay
            if s >= edges[0]:
                cls = (1 if fc is None or v >= fc else -1) * sum(s >= e for e in edges)
                seen = counts.get(cls, 0.0)
                s = 1 + (s - 1) / (1 + weight * seen)
                counts[cls] = seen + 1
            if n >= after and s0 >= 0.5 and rng.lo is not None:
                if rng.outside(v, 0.01 * rng.width()):
                    s = max(s, 4)
            rng.take(v)
        elif variant == "score_record":
            mult, after, need = a
            s0 = s
            if n >= after and s0 >= 0.5 and rng.lo is not None:
                if rng.outside(v, 0.01 * rng.width()):
                    s = max(s, 4)
            if n >= after and s0 >= need and s0 > best * mult:
                s = max(s, 4)
            best = max(best, s0)
            rng.take(v)
        elif variant == "jump_record":
            tol, floor, after, need = a
            jump = 0.0 if prev is None else abs(v - prev)
            if n >= after and s >= need and jump > jump_max * (1 + tol):
                s = max(s, floor)
            jump_max, prev = max(jump_max, jump), v
        elif variant == "forecast_range":
            margin, floor, after, need = a
            if n >= after and s >= need and rng.lo is not None:
                if rng.outside(c, margin * rng.width()):
                    s = max(s, floor)
            rng.take(c)
        elif variant == "refractory":
            threshold, rows_after = a
            s0 = s
            if s < 4 and n - last_hit <= rows_after:
                s = min(s, 1.0)
            if s0 >= threshold:
                last_hit = n
        elif variant == "stuck":
            k, pmax, rate = a[:3]
            every = len(a) > 3 and a[3]
            same = prev is not None and v == prev
            run = run + 1 if same else 0
            if run < k:
                rep += rate * ((1.0 if same else 0.0) - rep)
            if run == 0:
                rep_before = rep
            if n >= 300 and (run == k or (every and run > k)) and rep_before < pmax:
                s = max(s, 4)
            prev = v
        elif variant == "routine":
            t, tol, days, need = a
            if s >= t:
                stamp = datetime.datetime.fromisoformat(r["timestamp"][:19])
                minute = int(stamp.replace(tzinfo=datetime.timezone.utc).timestamp() // 60)
                if surprise is not None:
                    d = minute - surprise
                    k = round(d / 1440)
                    streak = streak + 1 if 1 <= k <= days and abs(d - k * 1440) <= tol else 0
                    if streak >= need:
                        s = min(s, 1.0)
                surprise = minute
        else:
            sys.exit(f"nab_variants: unknown variant {variant!r}")
        n += 1
        yield s


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    src, dst, variant = sys.argv[1], sys.argv[2], sys.argv[3]
    args = [float(x) for x in sys.argv[4:]]
    for root, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".csv"):
                continue
            path = os.path.join(root, name)
            with open(path) as f:
                rows = list(csv.DictReader(f))
            out = os.path.join(dst, os.path.relpath(path, src))
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with open(out, "w") as f:
                f.write("timestamp,value,anomaly_score\n")
                for r, s in zip(rows, transform(rows, variant, args)):
                    f.write("%s,%s,%.6f\n" % (r["timestamp"], r["value"], s / (1 + s)))


if __name__ == "__main__":
    main()
