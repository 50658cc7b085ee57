//! Snapshot files on disk: written atomically (temporary file, fsync, rename, fsync of the
//! folder) as a stream of record batches, and read back batch by batch with every problem
//! (truncation, wrong schema, newer version, duplicate rows) named with the file.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_ipc::reader::FileReader;
use arrow_ipc::writer::{FileWriter, IpcWriteOptions};
use arrow_ipc::CompressionType;
use arrow_schema::Schema;

use super::schema::{self, Row};

/// A snapshot problem: `FILE: reason`.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", file.display())]
pub struct SnapshotError {
    pub file: PathBuf,
    pub reason: String,
}

fn err(file: &Path, reason: impl Into<String>) -> SnapshotError {
    SnapshotError {
        file: file.to_path_buf(),
        reason: reason.into(),
    }
}

/// A snapshot being written; nothing replaces the previous file until [`Writer::commit`].
pub struct Writer {
    inner: FileWriter<BufWriter<File>>,
    tmp: PathBuf,
    path: PathBuf,
    rows: u64,
}

impl Writer {
    /// Starts writing a snapshot to `path` (through `path.tmp`).
    ///
    /// # Errors
    /// The temporary file cannot be created.
    pub fn create(path: &Path) -> Result<Writer, SnapshotError> {
        Writer::create_with(path, &schema::schema())
    }

    /// Starts writing a file of another schema (the history export) the same way, its
    /// record batches LZ4-compressed (Arrow IPC's LZ4 frame codec, which pyarrow reads).
    ///
    /// # Errors
    /// The temporary file cannot be created.
    pub fn create_compressed(path: &Path, schema: &Schema) -> Result<Writer, SnapshotError> {
        let tmp = path.with_extension("arrow.tmp");
        let options = IpcWriteOptions::default()
            .try_with_compression(Some(CompressionType::LZ4_FRAME))
            .map_err(|e| err(&tmp, e.to_string()))?;
        Writer::open(path, tmp, schema, options)
    }

    fn create_with(path: &Path, schema: &Schema) -> Result<Writer, SnapshotError> {
        let tmp = path.with_extension("arrow.tmp");
        Writer::open(path, tmp, schema, IpcWriteOptions::default())
    }

    fn open(
        path: &Path,
        tmp: PathBuf,
        schema: &Schema,
        options: IpcWriteOptions,
    ) -> Result<Writer, SnapshotError> {
        let file = File::create(&tmp).map_err(|e| err(&tmp, format!("cannot create: {e}")))?;
        let inner = FileWriter::try_new_with_options(BufWriter::new(file), schema, options)
            .map_err(|e| err(&tmp, e.to_string()))?;
        Ok(Writer {
            inner,
            tmp,
            path: path.to_path_buf(),
            rows: 0,
        })
    }

    /// Appends rows as one record batch.
    ///
    /// # Errors
    /// A write error.
    pub fn push(&mut self, rows: &[Row]) -> Result<(), SnapshotError> {
        if rows.is_empty() {
            return Ok(());
        }
        let batch = schema::to_batch(rows).map_err(|e| err(&self.tmp, e.to_string()))?;
        self.push_batch(&batch)
    }

    /// Appends a record batch of the file's schema.
    ///
    /// # Errors
    /// A write error.
    pub fn push_batch(&mut self, batch: &RecordBatch) -> Result<(), SnapshotError> {
        self.inner
            .write(batch)
            .map_err(|e| err(&self.tmp, format!("write failed: {e}")))?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Finishes the file, makes it durable and puts it in place atomically. Returns
    /// (rows, bytes).
    ///
    /// # Errors
    /// A write, sync or rename error; the previous snapshot then stays in place.
    pub fn commit(mut self) -> Result<(u64, u64), SnapshotError> {
        self.inner
            .finish()
            .map_err(|e| err(&self.tmp, format!("finishing failed: {e}")))?;
        let file = self
            .inner
            .into_inner()
            .map_err(|e| err(&self.tmp, format!("flush failed: {e}")))?
            .into_inner()
            .map_err(|e| err(&self.tmp, format!("flush failed: {}", e.error())))?;
        file.sync_all()
            .map_err(|e| err(&self.tmp, format!("fsync failed: {e}")))?;
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        drop(file);
        std::fs::rename(&self.tmp, &self.path)
            .map_err(|e| err(&self.path, format!("rename failed: {e}")))?;
        if let Some(dir) = self.path.parent() {
            // Make the rename itself durable.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok((self.rows, bytes))
    }
}

/// Reads a snapshot batch by batch, handing each batch's rows to `sink`, until the file ends
/// or `sink` breaks (it has seen enough; the rows read so far are counted).
///
/// # Errors
/// The first problem, naming the file: unreadable, truncated or not Arrow, wrong schema,
/// a newer schema version, nulls, or a series key that appears twice.
pub fn read(
    path: &Path,
    mut sink: impl FnMut(Vec<Row>) -> ControlFlow<()>,
) -> Result<u64, SnapshotError> {
    let file = File::open(path).map_err(|e| err(path, format!("cannot open: {e}")))?;
    let reader = FileReader::try_new(BufReader::new(file), None).map_err(|e| {
        err(
            path,
            format!("not a readable Arrow IPC file (truncated or corrupt?): {e}"),
        )
    })?;
    schema::check(&reader.schema()).map_err(|e| err(path, e))?;
    let mut seen = HashSet::new();
    let mut total = 0;
    for batch in reader {
        let batch = batch.map_err(|e| err(path, format!("corrupt record batch: {e}")))?;
        let rows = schema::from_batch(&batch).map_err(|e| err(path, e))?;
        for r in &rows {
            if !seen.insert(r.key) {
                return Err(err(
                    path,
                    format!("duplicate series rows (key {:016x})", r.key),
                ));
            }
        }
        total += rows.len() as u64;
        if sink(rows).is_break() {
            break;
        }
    }
    Ok(total)
}
