"""The two files of the contract with omen: history in (Arrow IPC file or stream, Parquet;
files or folders of them), model file out (Arrow IPC file, omen's snapshot schema v2).

Spark has no unsigned integers: the uint64 series key travels through Spark as int64 with
the same 64 bits (a wrapping cast both ways).
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

VERSION_KEY = b"omen.schema_version"
KIND_KEY = b"omen.kind"
HISTORY_VERSION = "1"
MODELS_VERSION = "2"

FINE_BUCKETS = 24
COARSE_BUCKETS = 7

HISTORY_SCHEMA = pa.schema(
    [
        pa.field("key", pa.uint64(), nullable=False),
        pa.field("tenant", pa.utf8()),
        pa.field("labels", pa.utf8()),
        pa.field("counter", pa.bool_()),
        pa.field("ts_ms", pa.int64()),
        pa.field("value", pa.float64()),
    ],
    metadata={VERSION_KEY: HISTORY_VERSION, KIND_KEY: "history"},
)

# Optional columns: omen writes `samples`, the series' mean raw samples per history bucket,
# with which the fitted per-bucket parameters are mapped to omen's per-sample steps. Files
# without it (other producers) read as null: the parameters stay per bucket.
OPTIONAL_HISTORY_FIELDS = [pa.field("samples", pa.float64())]

# History rows as they travel through Spark (key reinterpreted as int64).
SPARK_HISTORY_DDL = (
    "key long, tenant string, labels string, counter boolean, ts_ms long, value double, "
    "samples double"
)


def _profile_type(n: int) -> pa.DataType:
    return pa.list_(pa.field("item", pa.int16(), nullable=False), n)


MODELS_SCHEMA = pa.schema(
    [
        pa.field("key", pa.uint64(), nullable=False),
        pa.field("tenant", pa.utf8()),
        pa.field("labels", pa.utf8()),
        pa.field("rule", pa.uint16(), nullable=False),
        pa.field("last_ts", pa.int64(), nullable=False),
        pa.field("level", pa.float64(), nullable=False),
        pa.field("prev_raw", pa.float64(), nullable=False),
        pa.field("trend", pa.float32(), nullable=False),
        pa.field("band", pa.float32(), nullable=False),
        pa.field("err_season", pa.float32(), nullable=False),
        pa.field("err_plain", pa.float32(), nullable=False),
        pa.field("shock", pa.float32(), nullable=False),
        pa.field("step", pa.float32(), nullable=False),
        pa.field("seen", pa.uint32(), nullable=False),
        pa.field("run", pa.int8(), nullable=False),
        pa.field("flags", pa.uint8(), nullable=False),
        pa.field("profile_unit", pa.float32(), nullable=False),
        pa.field("profile_fine", _profile_type(FINE_BUCKETS), nullable=False),
        pa.field("profile_coarse", _profile_type(COARSE_BUCKETS), nullable=False),
        pa.field("alpha", pa.float64()),
        pa.field("beta", pa.float64()),
        pa.field("phi", pa.float64()),
        pa.field("gamma_fine", pa.float64()),
        pa.field("gamma_coarse", pa.float64()),
        pa.field("season_fine_ms", pa.int64()),
        pa.field("season_coarse_ms", pa.int64()),
    ],
    metadata={VERSION_KEY: MODELS_VERSION, KIND_KEY: "models"},
)

# The grouped-map UDF's output schema in Spark types (unsigned and fixed-size types are
# restored when the file is written).
SPARK_MODELS_DDL = (
    "key long, tenant string, labels string, rule int, last_ts long, level double, "
    "prev_raw double, trend float, band float, err_season float, err_plain float, "
    "shock float, step float, seen long, run int, flags int, profile_unit float, "
    "profile_fine array<smallint>, profile_coarse array<smallint>, alpha double, "
    "beta double, phi double, gamma_fine double, gamma_coarse double, "
    "season_fine_ms long, season_coarse_ms long"
)

_SUFFIXES = {".arrow", ".arrows", ".ipc", ".feather", ".parquet", ".pq"}


class HistoryError(ValueError):
    """A history input that cannot be used, naming the file and the problem."""


def expand_inputs(paths) -> list[str]:
    """Files named directly, plus the history files found (recursively) in folders, in a
    stable order. Hidden files and files with other suffixes in folders are skipped."""
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                if (f.is_file() and f.suffix.lower() in _SUFFIXES
                        and not any(part.startswith((".", "_")) for part in f.relative_to(path).parts)):
                    out.append(str(f))
        elif path.is_file():
            out.append(str(path))
        else:
            raise HistoryError(f"{p}: no such file or folder")
    if not out:
        raise HistoryError(f"no history files in {', '.join(map(str, paths))}")
    return out


def _check_schema(path: str, schema: pa.Schema) -> None:
    meta = schema.metadata or {}
    kind = meta.get(KIND_KEY)
    if kind is not None and kind != b"history":
        raise HistoryError(f"{path}: omen.kind is {kind.decode()!r}, expected 'history'")
    version = meta.get(VERSION_KEY)
    if version is not None and version.decode() != HISTORY_VERSION:
        raise HistoryError(
            f"{path}: history schema version {version.decode()} (this job reads {HISTORY_VERSION})")
    for field in HISTORY_SCHEMA:
        if field.name not in schema.names:
            raise HistoryError(f"{path}: no column {field.name!r}")


def _normalise(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The contract's columns in Spark's types: key reinterpreted as int64, optional columns
    null when the file has none."""
    cols = []
    for field in HISTORY_SCHEMA:
        col = batch.column(field.name)
        if field.name == "key":
            col = pc.cast(pc.cast(col, pa.uint64()), pa.int64(), safe=False)
        else:
            col = pc.cast(col, field.type)
        cols.append(col)
    names = list(HISTORY_SCHEMA.names)
    for field in OPTIONAL_HISTORY_FIELDS:
        if field.name in batch.schema.names:
            cols.append(pc.cast(batch.column(field.name), field.type))
        else:
            cols.append(pa.nulls(batch.num_rows, field.type))
        names.append(field.name)
    return pa.RecordBatch.from_arrays(cols, names=names)


def read_history_file(path: str):
    """Yields the record batches of one history file (IPC file, IPC stream or Parquet)."""
    if path.lower().endswith((".parquet", ".pq")):
        f = pq.ParquetFile(path)
        _check_schema(path, f.schema_arrow)
        for b in f.iter_batches(batch_size=65_536):
            yield _normalise(b)
        return
    with pa.memory_map(path) as source:
        try:
            reader = ipc.open_file(source)
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
        except pa.ArrowInvalid:
            source.seek(0)
            try:
                reader = ipc.open_stream(source)
            except pa.ArrowInvalid as e:
                raise HistoryError(f"{path}: not an Arrow IPC or Parquet file ({e})") from e
            batches = iter(reader)
        _check_schema(path, reader.schema)
        for b in batches:
            yield _normalise(b)


def read_partition(batches):
    """mapInArrow body: rows with a `path` column in, history batches of those files out."""
    for b in batches:
        for path in b.column("path").to_pylist():
            yield from read_history_file(path)


def to_models_table(table: pa.Table) -> pa.Table:
    """The UDF's output (Spark types) in omen's model schema, sorted by key."""
    n = table.num_rows
    cols = []
    for field in MODELS_SCHEMA:
        col = table.column(field.name).combine_chunks() if n else pa.array([], pa.null())
        if field.name == "key":
            col = pc.cast(col, pa.int64()) if n else pa.array([], pa.int64())
            col = pc.cast(col, pa.uint64(), safe=False)
        elif field.name in ("profile_fine", "profile_coarse"):
            size = field.type.list_size
            values = pc.cast(col.flatten(), pa.int16()) if n else pa.array([], pa.int16())
            if n and (pc.any(pc.not_equal(pc.list_value_length(col), size)).as_py()):
                raise ValueError(f"{field.name}: every profile must have {size} buckets")
            col = pa.FixedSizeListArray.from_arrays(values, type=field.type)
        else:
            col = pc.cast(col, field.type) if n else pa.array([], field.type)
        cols.append(col)
    out = pa.Table.from_arrays(cols, schema=MODELS_SCHEMA)
    return out.sort_by([("key", "ascending")])


def write_models(table: pa.Table, path: str, batch_rows: int = 65_536) -> None:
    """Writes the model file atomically: a temporary file beside it, fsynced, then renamed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    with pa.OSFile(str(tmp), "wb") as sink:
        with ipc.new_file(sink, MODELS_SCHEMA) as writer:
            for batch in table.to_batches(max_chunksize=batch_rows):
                writer.write_batch(batch)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, target)


def write_history(table: pa.Table, path: str) -> None:
    """Writes a history file (Arrow IPC file) in the contract's schema: for tests, benchmarks
    and tools that produce histories without omen."""
    table = table.select(HISTORY_SCHEMA.names).cast(HISTORY_SCHEMA)
    with pa.OSFile(str(path), "wb") as sink:
        with ipc.new_file(sink, HISTORY_SCHEMA) as writer:
            writer.write_table(table)
