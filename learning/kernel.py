"""omen's update (`state.rs` `Model::observe`) as a compiled loop over one series' history.

The same recursion as `omen_model.Model`, bit for bit (f32 fields rounded after each update,
the profile in i16 with omen's coarsen/refine), in the form numba compiles: flat arrays in,
the state updated in place, the mean absolute one-step error out. The grid search calls it
once per parameter candidate. Without numba it runs as plain (slow) Python.
"""

from __future__ import annotations

import math

import numpy as np

try:
    from numba import njit
except ImportError:  # pragma: no cover - the pinned requirements include numba
    def njit(*args, **kwargs):
        if args and callable(args[0]):
            return args[0]
        return lambda f: f

# Indices into the float state array.
LEVEL, PREV_RAW, TREND, BAND, ERR_SEASON, ERR_PLAIN, SHOCK, STEP, UNIT = range(9)
# Indices into the int state array.
LAST_TS, SEEN, RUN = range(3)
# Indices into the parameter array.
(P_ALPHA, P_BETA, P_PHI, P_GAMMA_FINE, P_GAMMA_COARSE, P_SEASON_GATE, P_SCALE_RATE,
 P_BAND_GROW, P_BAND_SHRINK, P_TAIL, P_CLIP, P_SHOCK_GAIN, P_SHOCK_DECAY, P_ADOPT_AFTER,
 P_REL_FLOOR, P_ABS_FLOOR, P_WIDTH, P_WARMUP, P_GAP_RESET, P_SHOCK_CAP) = range(20)
N_PARAMS = 20

_HIGH = 30_000.0
_LOW = 4_000
_REFINE_EVERY = 256
_MIN_LEARN = 10


def param_array(p) -> np.ndarray:
    """A `omen_model.Params` as the kernel's flat array."""
    a = np.zeros(N_PARAMS)
    a[P_ALPHA] = p.alpha
    a[P_BETA] = p.beta
    a[P_PHI] = p.phi
    a[P_GAMMA_FINE] = p.gamma_fine
    a[P_GAMMA_COARSE] = p.gamma_coarse
    a[P_SEASON_GATE] = 1.0 if p.season_gate else 0.0
    a[P_SCALE_RATE] = p.scale_rate
    a[P_BAND_GROW] = p.band_grow
    a[P_BAND_SHRINK] = p.band_shrink
    a[P_TAIL] = p.tail
    a[P_CLIP] = p.clip
    a[P_SHOCK_GAIN] = p.shock_gain
    a[P_SHOCK_DECAY] = p.shock_decay
    a[P_SHOCK_CAP] = p.shock_cap
    a[P_ADOPT_AFTER] = p.adopt_after
    a[P_REL_FLOOR] = p.rel_floor
    a[P_ABS_FLOOR] = p.abs_floor
    a[P_WIDTH] = p.width
    a[P_WARMUP] = p.warmup
    a[P_GAP_RESET] = p.gap_reset_steps
    return a


@njit(cache=False)
def _f32(x):
    return float(np.float32(x))


@njit(cache=False)
def _round_i16(v):
    r = math.floor(abs(v) + 0.5)
    if v < 0:
        r = -r
    if r > 32767.0:
        r = 32767.0
    if r < -32768.0:
        r = -32768.0
    return int(r)


@njit(cache=False)
def _max_abs(fine, coarse):
    m = 0
    for b in fine:
        if abs(int(b)) > m:
            m = abs(int(b))
    for b in coarse:
        if abs(int(b)) > m:
            m = abs(int(b))
    return m


@njit(cache=False)
def _coarsen(fs, fine, coarse):
    fs[UNIT] = _f32(fs[UNIT] * 2.0)
    for j in range(fine.shape[0]):
        fine[j] = int(fine[j] / 2)  # truncates toward zero, as Rust's i16 division
    for j in range(coarse.shape[0]):
        coarse[j] = int(coarse[j] / 2)


@njit(cache=False)
def _profile_value(fs, fine, coarse, i0, i1, w1, has_fine, c):
    v = 0.0
    if has_fine:
        v += (1.0 - w1) * float(fine[i0]) + w1 * float(fine[i1])
    if c >= 0:
        v += float(coarse[c])
    return v * fs[UNIT]


@njit(cache=False)
def _profile_add(fs, fine, coarse, i0, i1, w1, has_fine, c, fd, cd, hint):
    while True:
        if fs[UNIT] == 0.0:
            if not hint > 0.0:
                return
            fs[UNIT] = _f32(hint)
        unit = fs[UNIT]
        t0 = 0.0
        t1 = 0.0
        t2 = 0.0
        over = False
        if has_fine:
            t0 = float(fine[i0]) + (1.0 - w1) * fd / unit
            t1 = float(fine[i1]) + w1 * fd / unit
            over = abs(t0) > _HIGH or abs(t1) > _HIGH
        if c >= 0:
            t2 = float(coarse[c]) + cd / unit
            over = over or abs(t2) > _HIGH
        if over:
            _coarsen(fs, fine, coarse)
            continue
        if has_fine:
            fine[i0] = _round_i16(t0)
            fine[i1] = _round_i16(t1)
        if c >= 0:
            coarse[c] = _round_i16(t2)
        return


@njit(cache=False)
def _refine(fs, fine, coarse, hint):
    while fs[UNIT] > 4.0 * hint and hint > 0.0 and _max_abs(fine, coarse) < _LOW:
        fs[UNIT] = _f32(fs[UNIT] * 0.5)
        for j in range(fine.shape[0]):
            fine[j] = fine[j] * 2
        for j in range(coarse.shape[0]):
            coarse[j] = coarse[j] * 2


@njit(cache=False)
def run(p, ts, x, i0s, i1s, w1s, has_fine, cs, fs, ist, fine, coarse, score_from, errors):
    """Feeds (ts, x) to the model whose state is (fs, ist, fine, coarse), in place. Writes each
    one-step error to `errors` (NaN where the sample only restarted the model) and returns the
    mean absolute error over samples `score_from..`. The model must have seen ≥ 1 sample."""
    total = 0.0
    count = 0
    alpha_p = p[P_ALPHA]
    phi = p[P_PHI]
    gate = p[P_SEASON_GATE] != 0.0
    learn_until = max(p[P_WARMUP], float(_MIN_LEARN))
    ln_tail = math.log(p[P_TAIL])
    for t in range(ts.shape[0]):
        xt = x[t]
        i0 = i0s[t]
        i1 = i1s[t]
        w1 = w1s[t]
        c = cs[t]
        errors[t] = np.nan
        dt = float(ts[t] - ist[LAST_TS])
        step = fs[STEP] if fs[STEP] > 0.0 else dt
        k = dt / step
        gate_open = (not gate) or fs[ERR_SEASON] < fs[ERR_PLAIN]
        if k > p[P_GAP_RESET]:
            s = _profile_value(fs, fine, coarse, i0, i1, w1, has_fine, c) if gate_open else 0.0
            fs[LEVEL] = xt - s
            fs[TREND] = 0.0
            ist[RUN] = 0
            ist[LAST_TS] = ts[t]
            continue
        fs[STEP] = _f32(step + 0.1 * (min(dt, 4.0 * step) - step))
        season = _profile_value(fs, fine, coarse, i0, i1, w1, has_fine, c)
        regular = abs(k - 1.0) < 1e-3
        if regular:
            phi_k = phi
            damp = phi
        else:
            phi_k = phi ** k
            if phi >= 1.0:
                damp = k
            else:
                damp = phi * (1.0 - phi_k) / (1.0 - phi)
        level_fc = fs[LEVEL] + fs[TREND] * step * damp
        forecast = level_fc + (season if gate_open else 0.0)
        r = xt - forecast
        errors[t] = r
        if t >= score_from:
            total += abs(r)
            count += 1
        seen = ist[SEEN]
        learning = seen < learn_until
        floor = max(p[P_REL_FLOOR] * abs(fs[LEVEL]), p[P_ABS_FLOOR])
        band = -ln_tail * fs[BAND] if learning else fs[BAND]
        band = max(band, floor)
        widen = 1.0 if k <= 1.0 else math.sqrt(1.0 + (k - 1.0) * alpha_p * alpha_p)
        edge = band * widen * (1.0 + fs[SHOCK])
        half = p[P_WIDTH] * edge
        outside = abs(r) > edge and not learning
        if not outside:
            ist[RUN] = 0
        elif r > 0.0:
            ist[RUN] = min(max(ist[RUN], 0) + 1, 127)
        else:
            ist[RUN] = max(min(ist[RUN], 0) - 1, -128)
        n = float(seen)
        alpha = max(alpha_p, 1.0 / (n + 1.0))
        rate = max(p[P_SCALE_RATE], 1.0 / n)
        limit = math.inf if learning else p[P_CLIP] * half
        rc = min(max(r, -limit), limit)
        if abs(ist[RUN]) >= p[P_ADOPT_AFTER]:
            fs[LEVEL] = level_fc + r
            ist[RUN] = 0
        else:
            fs[LEVEL] = level_fc + alpha * rc
            fs[TREND] = _f32(phi_k * fs[TREND] + alpha * p[P_BETA] * rc / step)
            rs = min(max(xt - level_fc - season, -limit), limit)
            _profile_add(fs, fine, coarse, i0, i1, w1, has_fine, c,
                         p[P_GAMMA_FINE] * rs, p[P_GAMMA_COARSE] * rs, band / 1024.0)
            plain = min(abs(xt - level_fc), limit)
            fs[ERR_PLAIN] = _f32(fs[ERR_PLAIN] + _f32(rate * (plain - fs[ERR_PLAIN])))
            fs[ERR_SEASON] = _f32(fs[ERR_SEASON] + _f32(rate * (abs(rs) - fs[ERR_SEASON])))
        bump = p[P_SHOCK_GAIN] * min(math.log(abs(r) / edge), p[P_SHOCK_CAP]) if outside else 0.0
        fs[SHOCK] = _f32(fs[SHOCK] * p[P_SHOCK_DECAY] + bump)
        if learning:
            fs[BAND] = _f32(fs[BAND] + _f32((abs(r) - fs[BAND]) / n))
            if seen + 1 == learn_until:
                fs[BAND] = _f32(max(-ln_tail * fs[BAND], floor))
        elif abs(r) > band:
            fs[BAND] = _f32(band * p[P_BAND_GROW])
        else:
            fs[BAND] = _f32(band * p[P_BAND_SHRINK])
        if seen < 4294967295:
            ist[SEEN] = seen + 1
        ist[LAST_TS] = ts[t]
        if ist[SEEN] % _REFINE_EVERY == 0:
            _refine(fs, fine, coarse, band / 1024.0)
    return total / count if count > 0 else math.inf
