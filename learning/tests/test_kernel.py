"""The compiled kernel is omen's recursion, bit for bit with the reference port."""

import numpy as np

from learning import kernel
from learning.omen_model import DAY_MS, Model, Params, Profile, f32, phases


def reference(p, ts, x, state):
    m = Model()
    m.level, m.band, m.err_season, m.err_plain, m.step = state["level"], *map(
        f32, (state["band"], state["err_season"], state["err_plain"], state["step"]))
    m.seen, m.last_ts = state["seen"], state["last_ts"]
    m.profile = Profile(state["unit"], state["fine"], state["coarse"])
    i0, i1, w1, fine, c = phases(p, ts)
    errs = [m.observe(p, int(ts[t]), float(x[t]), (int(i0[t]), int(i1[t]), float(w1[t]), fine,
                                                   int(c[t]))) for t in range(len(ts))]
    return m, errs


def test_kernel_matches_the_reference_port():
    rng = np.random.default_rng(3)
    n = 3000
    steps = rng.choice([60_000, 60_000, 60_000, 120_000, 30_000], n)
    steps[1500] = 60_000 * 150  # a gap past gap_reset_steps
    ts = 1_764_979_200_000 + np.cumsum(steps)
    x = 50 + 20 * np.sin(2 * np.pi * (ts % DAY_MS) / DAY_MS) + rng.normal(0, 1, n)
    x[2000:] += 40  # a level shift
    x[2500] = 1e4  # an outlier
    for p in (Params(alpha=0.3, beta=0.1, phi=0.95, gamma_fine=0.1),
              Params(alpha=0.7, beta=0.0, phi=0.0, season_coarse_ms=0, season_gate=False),
              Params(phi=1.0, warmup=2000)):
        state = dict(level=50.0, band=6.0, err_season=1.0, err_plain=2.0, step=60_000.0,
                     seen=1000 if p.warmup < 1000 else 5, last_ts=int(ts[0]) - 60_000,
                     unit=0.01, fine=np.arange(24) * 10 - 120, coarse=[3, -3, 0, 0, 1, -1, 0])
        m, errs = reference(p, ts, x, state)
        fs = np.array([state["level"], 0.0, 0.0, f32(state["band"]), f32(state["err_season"]),
                       f32(state["err_plain"]), 0.0, f32(state["step"]), f32(state["unit"])])
        ist = np.array([state["last_ts"], state["seen"], 0], dtype=np.int64)
        fine = np.array(state["fine"], dtype=np.int16)
        coarse = np.array(state["coarse"], dtype=np.int16)
        out = np.empty(n)
        i0, i1, w1, has_fine, c = phases(p, ts)
        kernel.run(kernel.param_array(p), ts, x, i0, i1, w1, has_fine, c, fs, ist, fine,
                   coarse, 0, out)
        assert [e if e is not None else None for e in errs] == [
            None if np.isnan(e) else float(e) for e in out]
        assert (fs[kernel.LEVEL], fs[kernel.TREND], fs[kernel.BAND], fs[kernel.ERR_SEASON],
                fs[kernel.ERR_PLAIN], fs[kernel.SHOCK], fs[kernel.STEP], fs[kernel.UNIT]) == (
            m.level, m.trend, m.band, m.err_season, m.err_plain, m.shock, m.step,
            m.profile.unit)
        assert (ist[kernel.LAST_TS], ist[kernel.SEEN], ist[kernel.RUN]) == (
            m.last_ts, m.seen, m.run)
        assert fine.tolist() == m.profile.fine and coarse.tolist() == m.profile.coarse
