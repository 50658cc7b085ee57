"""omen's per-series online model, ported from `src/model/` (state.rs, params.rs, season.rs).

`Model` is the readable reference: every field of omen's `Model` with its storage type (f32
fields rounded to float32 after every update, the profile i16 in a per-series unit with
omen's coarsen/refine rules). `kernel.run` is the same recursion compiled (numba) for the
grid search and the final pass; a test checks the two agree bit for bit.

Keep both in step with state.rs: when omen's update changes, change them in the same commit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
FINE_BUCKETS = 24
COARSE_BUCKETS = 7

# Model.flags bits (state.rs).
COUNTER = 1
PRIMED = 2
STALE = 4
EMITTED = 8

REFINE_EVERY = 256  # state.rs: samples between checks of the profile unit
MIN_LEARN = 10  # state.rs: samples the band is a mean before it becomes a quantile
HIGH = 30_000.0  # season.rs: largest stored magnitude before the unit doubles
LOW = 4_000  # season.rs: below this the unit may be halved again

_f32 = np.float32


def f32(x: float) -> float:
    """Rounds to float32, as omen stores the field."""
    return float(_f32(x))


@dataclass(frozen=True)
class Params:
    """omen's `Params` with the defaults of `Params::new` for a rule with `seasonality: auto`
    and confidence 0.99. Only alpha, beta, phi, gamma_fine, gamma_coarse and the two season
    lengths are per-series (written to the model file); the rest are the rule's."""

    alpha: float = 0.5
    beta: float = 0.05
    phi: float = 0.9
    gamma_fine: float = 0.1
    gamma_coarse: float = 0.005
    season_fine_ms: int = DAY_MS
    season_coarse_ms: int = WEEK_MS
    fine_sharpness: float = 0.0
    season_gate: bool = True
    scale_rate: float = 0.02
    band_rate: float = 0.2
    tail: float = 0.002
    clip: float = 1.0
    shock_gain: float = 1.0
    shock_cap: float = 0.5
    shock_decay: float = 0.99
    adopt_after: int = 4
    rel_floor: float = 0.02
    abs_floor: float = 1e-9
    confidence: float = 0.99
    warmup: int = 30
    gap_reset_steps: float = 100.0

    @property
    def width(self) -> float:
        c = min(max(self.confidence, 0.5), 0.999_999)
        return math.log(1.0 - c) / math.log(self.tail)

    @property
    def band_grow(self) -> float:
        return math.exp(self.band_rate)

    @property
    def band_shrink(self) -> float:
        return math.exp(-self.band_rate * self.tail / (1.0 - self.tail))

    def with_(self, **kw) -> "Params":
        return replace(self, **kw)


def phases(p: Params, ts: np.ndarray):
    """`Phase::of` for every timestamp: (i0, i1, w1, fine, coarse) arrays; coarse is -1 when
    there is no coarse season."""
    ts = np.asarray(ts, dtype=np.int64)
    n = len(ts)
    if p.season_fine_ms > 0:
        pos = np.mod(ts, p.season_fine_ms).astype(np.float64) / float(p.season_fine_ms)
        x = pos * FINE_BUCKETS - 0.5
        fl = np.floor(x)
        sharp = min(max(p.fine_sharpness, 0.0), 0.999)
        w1 = np.clip((x - fl - 0.5) / (1.0 - sharp) + 0.5, 0.0, 1.0)
        i0 = np.mod(fl.astype(np.int64), FINE_BUCKETS)
        i1 = (i0 + 1) % FINE_BUCKETS
        fine = True
    else:
        i0 = np.zeros(n, dtype=np.int64)
        i1 = np.zeros(n, dtype=np.int64)
        w1 = np.zeros(n)
        fine = False
    if p.season_coarse_ms > 0:
        pos = np.mod(ts, p.season_coarse_ms).astype(np.float64) / float(p.season_coarse_ms)
        coarse = np.minimum((pos * COARSE_BUCKETS).astype(np.int64), COARSE_BUCKETS - 1)
    else:
        coarse = np.full(n, -1, dtype=np.int64)
    return i0, i1, w1, fine, coarse


class Profile:
    """`season::Profile`: i16 offsets in multiples of `unit`."""

    __slots__ = ("unit", "fine", "coarse")

    def __init__(self, unit=0.0, fine=None, coarse=None):
        self.unit = f32(unit)
        self.fine = [0] * FINE_BUCKETS if fine is None else [int(v) for v in fine]
        self.coarse = [0] * COARSE_BUCKETS if coarse is None else [int(v) for v in coarse]

    def value(self, i0, i1, w1, fine, c) -> float:
        v = 0.0
        if fine:
            v += (1.0 - w1) * self.fine[i0] + w1 * self.fine[i1]
        if c >= 0:
            v += self.coarse[c]
        return v * self.unit

    def add(self, i0, i1, w1, fine, c, fine_delta, coarse_delta, unit_hint):
        while True:
            if self.unit == 0.0:
                if not unit_hint > 0.0:
                    return
                self.unit = f32(unit_hint)
            unit = self.unit
            t0 = self.fine[i0] + (1.0 - w1) * fine_delta / unit if fine else 0.0
            t1 = self.fine[i1] + w1 * fine_delta / unit if fine else 0.0
            t2 = self.coarse[c] + coarse_delta / unit if c >= 0 else 0.0
            if (fine and (abs(t0) > HIGH or abs(t1) > HIGH)) or (c >= 0 and abs(t2) > HIGH):
                self._coarsen()
                continue
            if fine:
                self.fine[i0] = _round_i16(t0)
                self.fine[i1] = _round_i16(t1)
            if c >= 0:
                self.coarse[c] = _round_i16(t2)
            return

    def refine(self, unit_hint):
        while self.unit > 4.0 * unit_hint and unit_hint > 0.0 and self._max_abs() < LOW:
            self.unit = f32(self.unit * 0.5)
            self.fine = [b * 2 for b in self.fine]
            self.coarse = [b * 2 for b in self.coarse]

    def _coarsen(self):
        self.unit = f32(self.unit * 2.0)
        # Rust integer division truncates toward zero.
        self.fine = [int(b / 2) for b in self.fine]
        self.coarse = [int(b / 2) for b in self.coarse]

    def _max_abs(self):
        return max(abs(b) for b in self.fine + self.coarse)


def _round_i16(v: float) -> int:
    # Rust's f64::round rounds half away from zero; `as i16` saturates.
    r = math.floor(abs(v) + 0.5)
    r = r if v >= 0 else -r
    return int(min(max(r, -32768), 32767))


class Model:
    """`state::Model`, field for field. Only the gauge/rate path (`observe`) is needed by the
    trainer: history values are already per-second rates for counters."""

    def __init__(self, counter: bool = False):
        self.last_ts = None  # i64::MIN
        self.level = 0.0
        self.prev_raw = 0.0
        self.trend = 0.0
        self.band = 0.0
        self.err_season = 0.0
        self.err_plain = 0.0
        self.shock = 0.0
        self.step = 0.0
        self.seen = 0
        self.run = 0
        self.flags = COUNTER if counter else 0
        self.profile = Profile()

    def _gate_open(self, p):
        return (not p.season_gate) or self.err_season < self.err_plain

    def observe(self, p: Params, ts: int, x: float, ph) -> float | None:
        """One value (already a rate for counters). Returns the one-step error `x - forecast`
        (None when the sample only initialises or restarts the model)."""
        i0, i1, w1, fine, c = ph
        if self.seen == 0:
            self.level = x
            self.seen = 1
            self.last_ts = ts
            return None
        dt = float(ts - self.last_ts)
        step = self.step if self.step > 0.0 else dt
        k = dt / step
        if k > p.gap_reset_steps:
            season = self.profile.value(i0, i1, w1, fine, c) if self._gate_open(p) else 0.0
            self.level = x - season
            self.trend = 0.0
            self.run = 0
            self.last_ts = ts
            return None
        self.step = f32(step + 0.1 * (min(dt, 4.0 * step) - step))

        season = self.profile.value(i0, i1, w1, fine, c)
        gate_open = self._gate_open(p)
        regular = abs(k - 1.0) < 1e-3
        phi = p.phi
        phi_k = phi if regular else phi**k
        if regular:
            damp = phi
        elif phi >= 1.0:
            damp = k
        else:
            damp = phi * (1.0 - phi_k) / (1.0 - phi)
        level_fc = self.level + self.trend * step * damp
        forecast = level_fc + (season if gate_open else 0.0)
        r = x - forecast

        learning = self.seen < max(p.warmup, MIN_LEARN)
        floor = max(p.rel_floor * abs(self.level), p.abs_floor)
        band = (-math.log(p.tail) * self.band) if learning else self.band
        band = max(band, floor)
        widen = 1.0 if k <= 1.0 else math.sqrt(1.0 + (k - 1.0) * p.alpha * p.alpha)
        edge = band * widen * (1.0 + self.shock)
        half = p.width * edge

        outside = abs(r) > edge and not learning
        if not outside:
            self.run = 0
        elif r > 0.0:
            self.run = min(max(self.run, 0) + 1, 127)
        else:
            self.run = max(min(self.run, 0) - 1, -128)
        n = float(self.seen)
        alpha = max(p.alpha, 1.0 / (n + 1.0))
        rate = max(p.scale_rate, 1.0 / n)
        limit = math.inf if learning else p.clip * half
        rc = min(max(r, -limit), limit)

        if abs(self.run) >= p.adopt_after:
            self.level = level_fc + r
            self.run = 0
        else:
            self.level = level_fc + alpha * rc
            self.trend = f32(phi_k * self.trend + alpha * p.beta * rc / step)
            rs = min(max(x - level_fc - season, -limit), limit)
            self.profile.add(i0, i1, w1, fine, c, p.gamma_fine * rs, p.gamma_coarse * rs,
                             band / 1024.0)
            plain = min(abs(x - level_fc), limit)
            self.err_plain = f32(self.err_plain + f32(rate * (plain - self.err_plain)))
            self.err_season = f32(self.err_season + f32(rate * (abs(rs) - self.err_season)))
        self.shock = f32(self.shock * p.shock_decay
                         + (p.shock_gain * min(math.log(abs(r) / edge), p.shock_cap)
                            if outside else 0.0))
        if learning:
            self.band = f32(self.band + f32((abs(r) - self.band) / n))
            if self.seen + 1 == max(p.warmup, MIN_LEARN):
                self.band = f32(max(-math.log(p.tail) * self.band, floor))
        elif abs(r) > band:
            self.band = f32(band * p.band_grow)
        else:
            self.band = f32(band * p.band_shrink)
        self.seen = min(self.seen + 1, 2**32 - 1)
        self.last_ts = ts
        if self.seen % REFINE_EVERY == 0:
            self.profile.refine(band / 1024.0)
        return r
