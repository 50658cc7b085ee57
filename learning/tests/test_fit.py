"""Fitting one series without Spark: the weekly season, the empirical band, short histories."""

import numpy as np

from learning.fit import MIN_POINTS, fit_series
from learning.omen_model import DAY_MS, WEEK_MS

START = 1_764_979_200_000


def three_weeks(weekend: float, seed: int = 2):
    rng = np.random.default_rng(seed)
    ts = START + np.arange(21 * 288, dtype=np.int64) * 300_000
    weekday = ((ts % WEEK_MS) / WEEK_MS * 7).astype(int)
    x = (100 + 10 * np.sin(2 * np.pi * (ts % DAY_MS) / DAY_MS)
         + np.where(weekday >= 5, weekend, 0.0) + rng.normal(0, 1, len(ts)))
    return ts, x


def test_weekly_season_is_detected_and_shaped():
    ts, x = three_weeks(-20.0)
    r = fit_series(ts, x, False)
    assert (r["season_fine_ms"], r["season_coarse_ms"]) == (DAY_MS, WEEK_MS)
    coarse = np.array(r["profile_coarse"]) * r["profile_unit"]
    # Two of seven buckets 20 lower, zero mean: +5.7 and -14.3.
    assert np.allclose(coarse, [20 * 2 / 7] * 5 + [-20 * 5 / 7] * 2, atol=1.0), coarse
    assert r["err_season"] < r["err_plain"]


def test_no_weekly_season_when_there_is_none():
    ts, x = three_weeks(0.0)
    r = fit_series(ts, x, False)
    assert (r["season_fine_ms"], r["season_coarse_ms"]) == (DAY_MS, 0)


def test_band_is_the_far_quantile_with_enough_errors():
    ts, x = three_weeks(0.0)
    r = fit_series(ts, x, False)
    # |N(0, 1)| at miss rate 0.002 is 3.09.
    assert 2.6 < r["band"] < 3.6, r["band"]


def test_short_histories_are_left_to_omen():
    ts = START + np.arange(MIN_POINTS - 1, dtype=np.int64) * 60_000
    assert fit_series(ts, np.ones(len(ts)), False) is None
    ts = START + np.arange(MIN_POINTS, dtype=np.int64) * 60_000
    r = fit_series(ts, np.ones(len(ts)), True)
    assert r["season_fine_ms"] is None and r["season_coarse_ms"] is None
    assert r["flags"] == 1 and r["step"] == 60_000.0


def test_per_bucket_parameters_map_to_omens_raw_steps():
    """omen exports `samples` (raw samples per bucket); the job maps per-bucket smoothing to
    per-sample with the same time constants, as omen's own fitter does."""
    import pandas as pd

    from learning.fit import ALPHA_MIN, fit_group, per_sample

    ts, x = three_weeks(0.0)
    row = fit_series(ts, x, False)
    m = 20.0
    out = per_sample(row, m)
    # m per-sample updates move the level as far as one per-bucket update.
    assert abs((1 - out["alpha"]) ** m - (1 - row["alpha"])) < 1e-12 or out["alpha"] == ALPHA_MIN
    if row["phi"] > 0:
        assert abs(out["phi"] ** m - row["phi"]) < 1e-12
    assert abs((1 - out["gamma_fine"]) ** m - (1 - row["gamma_fine"])) < 1e-12
    assert out["beta"] == row["beta"] and out["band"] == row["band"]
    assert abs(out["step"] - 300_000 / m) < 1e-3
    assert per_sample(row, 1.0) == row, "one sample per bucket: nothing to map"

    pdf = pd.DataFrame({"key": 5, "tenant": None, "labels": None, "counter": False,
                        "ts_ms": ts, "value": x, "samples": m})
    got = fit_group(pdf).iloc[0]
    assert got["alpha"] == out["alpha"] and got["step"] == out["step"]
    no_samples = fit_group(pdf.assign(samples=None)).iloc[0]
    assert no_samples["alpha"] == row["alpha"], "files without the column keep per-bucket values"
