"""The learning core end to end in Spark local mode, on generated histories with known truth."""

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from learning import files, train
from learning.files import HistoryError, write_history
from learning.synth import DAY_MS, daily_shape, generate

ROOT = Path(__file__).resolve().parents[2]

# The contract, written out independently of files.MODELS_SCHEMA.
EXPECTED_COLUMNS = [
    ("key", pa.uint64(), False),
    ("tenant", pa.utf8(), True),
    ("labels", pa.utf8(), True),
    ("rule", pa.uint16(), False),
    ("last_ts", pa.int64(), False),
    ("level", pa.float64(), False),
    ("prev_raw", pa.float64(), False),
    ("trend", pa.float32(), False),
    ("band", pa.float32(), False),
    ("err_season", pa.float32(), False),
    ("err_plain", pa.float32(), False),
    ("shock", pa.float32(), False),
    ("step", pa.float32(), False),
    ("seen", pa.uint32(), False),
    ("run", pa.int8(), False),
    ("flags", pa.uint8(), False),
    ("profile_unit", pa.float32(), False),
    ("profile_fine", pa.list_(pa.field("item", pa.int16(), nullable=False), 24), False),
    ("profile_coarse", pa.list_(pa.field("item", pa.int16(), nullable=False), 7), False),
    ("alpha", pa.float64(), True),
    ("beta", pa.float64(), True),
    ("phi", pa.float64(), True),
    ("gamma_fine", pa.float64(), True),
    ("gamma_coarse", pa.float64(), True),
    ("season_fine_ms", pa.int64(), True),
    ("season_coarse_ms", pa.int64(), True),
]


@pytest.fixture(scope="session")
def history(tmp_path_factory):
    table, truth = generate(n_series=50, days=3, step_ms=300_000, seed=7)
    # One series too short to fit: it gets no row (omen learns it online).
    short = 20
    table = pa.concat_tables([table, pa.Table.from_pydict({
        "key": pa.array([12345] * short, pa.uint64()),
        "tenant": pa.array([None] * short, pa.utf8()),
        "labels": pa.array([None] * short, pa.utf8()),
        "counter": [False] * short,
        "ts_ms": pa.array([int(table["ts_ms"][0].as_py()) + i * 300_000 for i in range(short)],
                          pa.int64()),
        "value": [1.0] * short,
    }, schema=table.schema)])
    d = tmp_path_factory.mktemp("history")
    path = d / "history.arrow"
    write_history(table, path)
    return table, truth, path


@pytest.fixture(scope="session")
def spark():
    s = train.session("local[2]", 4)
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def trained(spark, history, tmp_path_factory):
    _, truth, path = history
    out = tmp_path_factory.mktemp("models") / "models.arrow"
    stats = train.train(spark, [str(path)], str(out))
    with pa.memory_map(str(out)) as src:
        table = ipc.open_file(src).read_all()
    rows = {r["key"]: r for r in table.to_pylist()}
    return out, table, rows, truth, stats


def fine_values(row):
    return np.array(row["profile_fine"], dtype=float) * row["profile_unit"]


def test_schema_is_the_contract(trained):
    _, table, _, _, _ = trained
    got = [(f.name, f.type, f.nullable) for f in table.schema]
    assert got == EXPECTED_COLUMNS
    assert table.schema.metadata == {b"omen.schema_version": b"2", b"omen.kind": b"models"}


def test_one_row_per_series(trained):
    _, table, rows, truth, stats = trained
    assert table.num_rows == len(truth) == stats["series"]
    assert set(rows) == set(truth)  # the short series (key 12345) is left out
    assert any(k >= 2**63 for k in rows), "keys above 2^63 survive Spark's signed longs"
    keys = table.column("key").to_pylist()
    assert keys == sorted(keys)


def test_state_semantics(trained, history):
    table, _, _ = history
    _, _, rows, truth, _ = trained
    last_ts = int(np.max(table.column("ts_ms").to_numpy()))
    for key, t in truth.items():
        r = rows[key]
        assert r["rule"] == 0
        assert r["flags"] == (1 if t.kind == "counter" else 0)  # COUNTER set, PRIMED unset
        assert r["seen"] >= 1000
        assert r["last_ts"] == last_ts
        assert r["step"] == 300_000.0
        assert r["prev_raw"] == 0.0 and r["shock"] == 0.0 and r["run"] == 0
        assert r["tenant"].startswith("team-") and r["labels"].startswith("{__name__=")
        assert 0 < r["alpha"] <= 1 and 0 <= r["beta"] < 1 and 0 <= r["phi"] <= 1


def test_daily_series_get_the_daily_profile(trained):
    _, _, rows, truth, _ = trained
    centres = (np.arange(24) + 0.5) / 24 * DAY_MS
    daily = [k for k, t in truth.items() if t.daily]
    assert len(daily) == 40
    for key in daily:
        r, t = rows[key], truth[key]
        assert r["season_fine_ms"] == 86_400_000, (t, r)
        shape = daily_shape(centres, t.phase)
        corr = np.corrcoef(fine_values(r), shape)[0, 1]
        assert corr > 0.9, (t, corr)
        # The profile's amplitude matches the truth's within 25 %.
        amp = np.ptp(fine_values(r)) / (t.amplitude * np.ptp(shape))
        assert 0.75 < amp < 1.25, (t, amp)
        # The season gate is open: the profile lowers the one-step error.
        assert r["err_season"] < r["err_plain"]


def test_flat_series_get_no_profile(trained):
    _, _, rows, truth, _ = trained
    for key in (k for k, t in truth.items() if t.kind == "flat"):
        r, t = rows[key], truth[key]
        assert r["season_fine_ms"] == 0
        assert np.abs(fine_values(r)).max() < 0.1 * t.noise
        assert np.abs(np.array(r["profile_coarse"]) * r["profile_unit"]).max() < t.noise


def test_band_is_sensible_relative_to_the_noise(trained):
    _, _, rows, truth, _ = trained
    for key, t in truth.items():
        r = rows[key]
        # A far quantile (miss rate 0.002) of the one-step error: a few noise sigmas.
        assert 2.5 * t.noise < r["band"] < 8 * t.noise, (t, r["band"] / t.noise)
        assert r["err_season"] < 1.5 * t.noise or r["err_plain"] < 1.5 * t.noise


def test_level_shift_is_adopted(trained, history):
    table, _, _ = history
    _, _, rows, truth, _ = trained
    for key in (k for k, t in truth.items() if t.kind == "shift"):
        vals = table.filter(pa.compute.equal(table["key"], pa.scalar(key, pa.uint64())))
        tail = float(np.mean(vals.column("value").to_numpy()[-50:]))
        assert abs(rows[key]["level"] - tail) < 2 * truth[key].noise


def test_cli_on_a_folder_of_arrow_and_parquet_is_deterministic(trained, history, tmp_path):
    out1, _, _, _, _ = trained
    table, _, _ = history
    folder = tmp_path / "exported"
    folder.mkdir()
    half = table.num_rows // 2
    write_history(table.slice(0, half), folder / "a.arrow")
    pq.write_table(table.slice(half), folder / "b.parquet")
    out2 = tmp_path / "models.arrow"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "learning.train", "--input", str(folder), "--output", str(out2),
         "--master", "local[2]", "--partitions", "3"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "50 series from 2 file(s)" in proc.stdout
    assert out2.read_bytes() == Path(out1).read_bytes()


def test_a_models_file_is_refused_as_history(trained, tmp_path):
    out1 = trained[0]
    with pytest.raises(HistoryError, match="omen.kind is 'models'"):
        list(files.read_history_file(str(out1)))
    with pytest.raises(HistoryError, match="no such file"):
        files.expand_inputs([str(tmp_path / "missing")])
