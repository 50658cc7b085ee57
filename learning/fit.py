"""Fitting one series: season detection, the seasonal profile, smoothing parameters by grid
search on omen's own recursion, the scale, and the state omen continues from.

Pure numpy/pandas, no Spark: `fit_series` is what the grouped-map UDF calls per key, and what
the tests call directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .omen_model import (
    COARSE_BUCKETS,
    COUNTER,
    DAY_MS,
    FINE_BUCKETS,
    WEEK_MS,
    Params,
    f32,
    phases,
)
from . import kernel

# The state omen needs before it emits; imported series start past any rule's warm-up.
SEEN_FLOOR = 1000
# Below this many points a series is not fitted (no row is written; omen learns it online).
MIN_POINTS = 48
# Share of the decomposed variance a profile must explain to be kept.
MIN_STRENGTH = 0.2

ALPHAS = (0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)
# (beta, phi): no trend, and three damped trends.
TRENDS = ((0.0, 0.0), (0.05, 0.9), (0.1, 0.98), (0.3, 0.8))
GAMMAS_FINE = (0.02, 0.1)

RULE = Params()  # the rule defaults the job assumes (seasonality: auto, confidence 0.99)


@dataclass
class Season:
    """Detected seasons: length in ms (0 = none, None = not decidable from this history,
    leave the rule's default) and the profile in value units."""

    fine_ms: int | None
    coarse_ms: int | None
    fine: np.ndarray
    coarse: np.ndarray


def _regular(ts: np.ndarray, x: np.ndarray, step: float) -> np.ndarray:
    """Values on the regular grid t0 + i*step, gaps filled linearly (for decomposition only)."""
    idx = np.rint((ts - ts[0]) / step).astype(np.int64)
    grid = np.full(idx[-1] + 1, np.nan)
    grid[idx] = x
    bad = np.isnan(grid)
    if bad.any():
        good = np.flatnonzero(~bad)
        grid[bad] = np.interp(np.flatnonzero(bad), good, grid[good])
    return grid


def _centred_mean(y: np.ndarray, w: int) -> np.ndarray:
    """Centred moving mean over w points (a whole season, so the season cancels); NaN where the
    window does not fit. Even w uses the 2×w average, as classical decomposition does."""
    out = np.full(len(y), np.nan)
    if len(y) < w + 1:
        return out
    c = np.concatenate(([0.0], np.cumsum(y)))
    if w % 2 == 1:
        h = w // 2
        out[h:len(y) - h] = (c[w:] - c[:-w]) / w
    else:
        h = w // 2
        m = (c[w:] - c[:-w]) / w  # mean of y[i:i+w], centred at i + w/2 - 0.5
        mm = 0.5 * (m[:-1] + m[1:])  # centred at i + w/2
        out[h:h + len(mm)] = mm
    return out


def _fine_values(p: Params, ts: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The fine profile b (value units) at ts, interpolated as omen does."""
    i0, i1, w1, _, _ = phases(p, ts)
    return (1.0 - w1) * b[i0] + w1 * b[i1]


def _fine_lstsq(p: Params, ts: np.ndarray, d: np.ndarray):
    """Least-squares bucket values b (zero mean) such that omen's interpolated profile at ts
    matches d; returns b and the fitted values. Normal equations: each row has two non-zero
    weights, so AᵀA is accumulated directly (24×24, tridiagonal and cyclic)."""
    i0, i1, w1, _, _ = phases(p, ts)
    w0 = 1.0 - w1
    n = FINE_BUCKETS
    ata = np.bincount(i0 * n + i0, weights=w0 * w0, minlength=n * n)
    ata += np.bincount(i1 * n + i1, weights=w1 * w1, minlength=n * n)
    ata += np.bincount(i0 * n + i1, weights=w0 * w1, minlength=n * n)
    ata += np.bincount(i1 * n + i0, weights=w0 * w1, minlength=n * n)
    ata = ata.reshape(n, n)
    atd = np.bincount(i0, weights=w0 * d, minlength=n) + np.bincount(i1, weights=w1 * d, minlength=n)
    # A tiny ridge keeps buckets without data (short or gappy histories) at zero.
    ridge = 1e-9 * max(np.trace(ata), 1.0)
    b = np.linalg.solve(ata + ridge * np.eye(n), atd)
    b -= b.mean()
    return b, w0 * b[i0] + w1 * b[i1]


def detect_season(ts: np.ndarray, x: np.ndarray, step: float) -> Season:
    """Daily (fine, 24 interpolated buckets) and weekly (coarse, 7 steps) profiles, each kept
    only when the history spans two seasons and the profile explains at least MIN_STRENGTH of
    the variance left after a centred one-season moving mean (a level robust to the season)."""
    span = float(ts[-1] - ts[0]) + step
    fine = np.zeros(FINE_BUCKETS)
    coarse = np.zeros(COARSE_BUCKETS)
    fine_ms: int | None = None
    coarse_ms: int | None = None
    grid = _regular(ts, x, step)
    gts = ts[0] + np.arange(len(grid), dtype=np.int64) * int(round(step))

    if span >= 2 * DAY_MS and step <= DAY_MS / 8:
        fine_ms = 0
        ma = _centred_mean(grid, int(round(DAY_MS / step)))
        ok = ~np.isnan(ma)
        d = grid[ok] - ma[ok]
        b, fitted = _fine_lstsq(RULE, gts[ok], d)
        rest = d - fitted
        var = d.var()
        if var > 0 and 1.0 - rest.var() / var >= MIN_STRENGTH:
            fine_ms = DAY_MS
            fine = b
            grid = grid - _fine_values(RULE, gts, b)

    if span >= 2 * WEEK_MS and step <= WEEK_MS / 56:
        coarse_ms = 0
        ma = _centred_mean(grid, int(round(WEEK_MS / step)))
        ok = ~np.isnan(ma)
        d = grid[ok] - ma[ok]
        c = np.minimum(((gts[ok] % WEEK_MS) / WEEK_MS * COARSE_BUCKETS).astype(np.int64),
                       COARSE_BUCKETS - 1)
        sums = np.bincount(c, weights=d, minlength=COARSE_BUCKETS)
        counts = np.bincount(c, minlength=COARSE_BUCKETS)
        means = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
        means -= means.mean()
        rest = d - means[c]
        var = d.var()
        if var > 0 and 1.0 - rest.var() / var >= MIN_STRENGTH:
            coarse_ms = WEEK_MS
            coarse = means
    return Season(fine_ms, coarse_ms, fine, coarse)


def _params_for(season: Season) -> Params:
    """The rule defaults with the detected season lengths (None keeps the rule's)."""
    kw = {}
    if season.fine_ms is not None:
        kw["season_fine_ms"] = season.fine_ms
    if season.coarse_ms is not None:
        kw["season_coarse_ms"] = season.coarse_ms
    return RULE.with_(**kw)


def _season_values(p: Params, ts: np.ndarray, season: Season) -> np.ndarray:
    i0, i1, w1, fine, c = phases(p, ts)
    v = np.zeros(len(ts))
    if fine:
        v += (1.0 - w1) * season.fine[i0] + w1 * season.fine[i1]
    if p.season_coarse_ms > 0:
        v += season.coarse[c]
    return v


def _band_estimate(p: Params, errors: np.ndarray, floor: float) -> float:
    """The far quantile (miss rate `tail`) of the absolute one-step error: the empirical
    quantile when the errors hold at least two misses' worth, else omen's own warm-up estimate
    `-ln(tail) × mean |error|` (the quantile of a Laplace error)."""
    a = np.abs(errors)
    if len(a) == 0:
        return floor
    if len(a) * p.tail >= 2.0:
        q = float(np.quantile(a, 1.0 - p.tail))
    else:
        q = -math.log(p.tail) * float(a.mean())
    return max(q, floor)


def fit_series(ts, x, counter: bool) -> dict | None:
    """Fits one series from its history (bucket timestamps in ms, bucket means; per-second rates
    for counters). Returns the model-file row (state + parameters) or None when the history is
    too short."""
    ts = np.asarray(ts, dtype=np.int64)
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x)
    ts, x = ts[ok], x[ok]
    order = np.argsort(ts, kind="stable")
    ts, x = ts[order], x[order]
    if len(ts) > 1:
        keep = np.concatenate(([True], np.diff(ts) > 0))
        ts, x = ts[keep], x[keep]
    if len(ts) < MIN_POINTS:
        return None
    step = float(np.median(np.diff(ts)))

    season = detect_season(ts, x, step)
    p = _params_for(season)
    sv = _season_values(p, ts, season)
    y = x - sv
    head = y[: max(MIN_POINTS // 2, min(len(y), int(DAY_MS / step) // 24))]
    level0 = float(np.median(head))
    floor0 = max(p.rel_floor * abs(level0), p.abs_floor)
    d_plain = np.abs(np.diff(x))
    d_season = np.abs(np.diff(y))
    band0 = _band_estimate(p, d_season / math.sqrt(2.0), floor0)
    init = dict(
        level=level0,
        trend=0.0,
        band=band0,
        err_season=float(d_season.mean()) / math.sqrt(2.0),
        err_plain=float(d_plain.mean()) / math.sqrt(2.0),
        step=step,
        seen=SEEN_FLOOR,
        last_ts=int(ts[0]) - int(step),
        fine=season.fine,
        coarse=season.coarse,
    )

    # Grid search on omen's own recursion, warm-started from the decomposition.
    fine_on = p.season_fine_ms > 0
    gammas = GAMMAS_FINE if fine_on else (RULE.gamma_fine,)
    cand = [(a, b, ph, g) for a in ALPHAS for (b, ph) in TRENDS for g in gammas]
    i0, i1, w1, has_fine, c = phases(p, ts)
    maxabs = float(max(np.abs(season.fine).max(), np.abs(season.coarse).max()))
    unit = f32(max(band0 / 1024.0, maxabs / 20_000.0))
    fine0 = np.rint(season.fine / unit).astype(np.int16) if unit > 0 else np.zeros(FINE_BUCKETS, np.int16)
    coarse0 = np.rint(season.coarse / unit).astype(np.int16) if unit > 0 else np.zeros(COARSE_BUCKETS, np.int16)
    fs0 = np.zeros(9)
    fs0[kernel.LEVEL] = level0
    fs0[kernel.BAND] = f32(band0)
    fs0[kernel.ERR_SEASON] = f32(init["err_season"])
    fs0[kernel.ERR_PLAIN] = f32(init["err_plain"])
    fs0[kernel.STEP] = f32(step)
    fs0[kernel.UNIT] = unit
    ist0 = np.array([init["last_ts"], SEEN_FLOOR, 0], dtype=np.int64)
    errors = np.empty(len(ts))
    score_from = len(ts) // 5
    best, best_err, best_state = None, math.inf, None
    for cnd in cand:
        a, b, ph, g = cnd
        pa_ = kernel.param_array(p.with_(alpha=a, beta=b, phi=ph, gamma_fine=g))
        fs, ist, fi, co = fs0.copy(), ist0.copy(), fine0.copy(), coarse0.copy()
        e = kernel.run(pa_, ts, x, i0, i1, w1, has_fine, c, fs, ist, fi, co, score_from, errors)
        if e < best_err:  # strict: ties keep the earlier (simpler) candidate
            best, best_err = cnd, e
            best_state = (fs, ist, fi, co, errors[score_from:].copy())
    if best is None:
        return None
    alpha, beta, phi, gamma_fine = best
    fs, ist, fi, co, errs = best_state
    level = float(fs[kernel.LEVEL])
    floor = max(p.rel_floor * abs(level), p.abs_floor)
    band = _band_estimate(p, errs[np.isfinite(errs)], floor)

    return dict(
        last_ts=int(ist[kernel.LAST_TS]),
        level=level,
        prev_raw=0.0,
        trend=float(fs[kernel.TREND]),
        band=f32(band),
        err_season=float(fs[kernel.ERR_SEASON]),
        err_plain=float(fs[kernel.ERR_PLAIN]),
        shock=0.0,
        step=float(fs[kernel.STEP]),
        seen=int(ist[kernel.SEEN]),
        run=0,
        flags=COUNTER if counter else 0,
        profile_unit=float(fs[kernel.UNIT]),
        profile_fine=[int(v) for v in fi],
        profile_coarse=[int(v) for v in co],
        alpha=float(alpha),
        beta=float(beta),
        phi=float(phi),
        gamma_fine=float(gamma_fine) if fine_on else None,
        gamma_coarse=None,
        season_fine_ms=season.fine_ms,
        season_coarse_ms=season.coarse_ms,
        mae=float(best_err),
    )


OUTPUT_COLUMNS = [
    "key", "tenant", "labels", "rule", "last_ts", "level", "prev_raw", "trend", "band",
    "err_season", "err_plain", "shock", "step", "seen", "run", "flags", "profile_unit",
    "profile_fine", "profile_coarse", "alpha", "beta", "phi", "gamma_fine", "gamma_coarse",
    "season_fine_ms", "season_coarse_ms",
]


# omen's floor on per-sample level smoothing (src/fit/mod.rs ALPHA_MIN): its robust
# machinery (clipping, level-shift adoption) is tuned for a level that follows.
ALPHA_MIN = 0.02


def per_sample(row: dict, m: float) -> dict:
    """Maps a row fitted on history buckets to omen's raw steps, `m` raw samples per bucket
    (as omen's own background fitter does, `fit::per_sample`): smoothing constants keep their
    time constants (`1 - (1 - a)^(1/m)`, `phi^(1/m)`; beta is a fraction of alpha and stays),
    and the typical interval becomes the raw one. The band stays the bucket-level quantile:
    omen's tracker widens it within a few samples where raw samples are noisier (a wider
    guess would take thousands of samples to shrink and hide anomalies meanwhile)."""
    if not (m > 1.0 and math.isfinite(m)):
        return row
    out = dict(row)
    out["alpha"] = min(max(1.0 - (1.0 - row["alpha"]) ** (1.0 / m), ALPHA_MIN), 1.0)
    if row["phi"] > 0.0:
        out["phi"] = row["phi"] ** (1.0 / m)
    if row["gamma_fine"] is not None:
        out["gamma_fine"] = 1.0 - (1.0 - row["gamma_fine"]) ** (1.0 / m)
    out["step"] = float(f32(row["step"] / m))
    return out


def fit_group(pdf: pd.DataFrame) -> pd.DataFrame:
    """The grouped-map UDF body: one key's history rows in, zero or one model row out."""
    if pdf.empty:
        return pd.DataFrame(columns=OUTPUT_COLUMNS)
    first = pdf.iloc[0]
    counter = bool(pdf["counter"].fillna(False).any())
    row = fit_series(pdf["ts_ms"].to_numpy(), pdf["value"].to_numpy(dtype=np.float64), counter)
    if row is None:
        return pd.DataFrame(columns=OUTPUT_COLUMNS)
    if "samples" in pdf.columns:
        samples = pdf["samples"].dropna()
        if len(samples):
            row = per_sample(row, float(samples.median()))
    tenant = pdf["tenant"].dropna()
    labels = pdf["labels"].dropna()
    row.update(
        key=int(first["key"]),
        tenant=tenant.iloc[0] if len(tenant) else None,
        labels=labels.iloc[0] if len(labels) else None,
        rule=0,
    )
    return pd.DataFrame([{c: row[c] for c in OUTPUT_COLUMNS}])
