"""Generated histories with known truth, for the tests and the benchmark."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .files import HISTORY_SCHEMA

DAY_MS = 86_400_000
START_MS = 1_764_979_200_000  # 2025-12-06 00:00 UTC


@dataclass
class Truth:
    kind: str  # daily, counter, flat, shift
    daily: bool
    amplitude: float
    phase: float
    noise: float


def daily_shape(ts_ms: np.ndarray, phase: float) -> np.ndarray:
    """The unit daily pattern: a sine plus a sharper evening peak, shifted by `phase` days."""
    d = (np.asarray(ts_ms) % DAY_MS) / DAY_MS + phase
    return np.sin(2 * np.pi * d) + 0.4 * np.cos(4 * np.pi * d)


def generate(n_series: int = 50, days: float = 3.0, step_ms: int = 300_000, seed: int = 7):
    """A history table (the contract's schema) and the truth per key.

    Of every ten series: six gauges with a daily pattern (random phase and amplitude), two
    counters whose rate has a daily pattern, one flat gauge, one gauge with a level shift."""
    rng = np.random.default_rng(seed)
    n = int(days * DAY_MS / step_ms)
    ts = START_MS + np.arange(n, dtype=np.int64) * step_ms
    keys, tenants, labels, counters, tss, values = [], [], [], [], [], []
    truth: dict[int, Truth] = {}
    for i in range(n_series):
        key = int(rng.integers(0, 2**64, dtype=np.uint64))
        slot = i % 10
        level = float(rng.uniform(10, 1000))
        noise = level * float(rng.uniform(0.005, 0.02))
        phase = float(rng.uniform(0, 1))
        amp = level * float(rng.uniform(0.1, 0.4))
        if slot < 6:
            kind, daily = "daily", True
            x = level + amp * daily_shape(ts, phase) + rng.normal(0, noise, n)
        elif slot < 8:
            kind, daily = "counter", True
            x = np.maximum(level + amp * daily_shape(ts, phase) + rng.normal(0, noise, n), 0.0)
        elif slot == 8:
            kind, daily, amp = "flat", False, 0.0
            x = level + rng.normal(0, noise, n)
        else:
            kind, daily, amp = "shift", False, 0.0
            x = level + rng.normal(0, noise, n)
            x[n // 2:] += 20 * noise
        truth[key] = Truth(kind, daily, amp, phase, noise)
        keys.append(np.full(n, key, dtype=np.uint64))
        tenants.extend([f"team-{i % 3}"] * n)
        name = "http_requests_total" if kind == "counter" else "queue_depth"
        labels.extend([f'{{__name__="{name}", instance="host-{i}"}}'] * n)
        counters.append(np.full(n, kind == "counter"))
        tss.append(ts)
        values.append(x)
    table = pa.Table.from_arrays(
        [
            pa.array(np.concatenate(keys), pa.uint64()),
            pa.array(tenants, pa.utf8()),
            pa.array(labels, pa.utf8()),
            pa.array(np.concatenate(counters), pa.bool_()),
            pa.array(np.concatenate(tss), pa.int64()),
            pa.array(np.concatenate(values), pa.float64()),
        ],
        schema=HISTORY_SCHEMA,
    )
    return table, truth
