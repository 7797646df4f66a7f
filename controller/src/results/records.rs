//! Per-request records of a run, written as Parquet as windows arrive.
//!
//! Part of the raw record beside `windows.jsonl`: `results::rebuild` never
//! reads it. One file per phase run (`requests/phase-<i>.parquet`), closed
//! at the phase's end: Parquet needs its footer, so a killed controller
//! loses at most the running phase's file. Memory stays bounded: rows are
//! handed to the writer every [`BATCH_ROWS`] records and written out as a
//! row group every [`ROW_GROUP_ROWS`].

use arrow_array::builder::{
    Float64Builder, Int64Builder, StringBuilder, UInt32Builder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use stampede_common::proto::RequestRecord;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Records buffered before they are handed to the Parquet writer.
pub const BATCH_ROWS: usize = 8_192;
/// Rows per Parquet row group (the writer's bound on what it holds).
pub const ROW_GROUP_ROWS: usize = 65_536;
/// Directory of the record files inside a run directory.
pub const DIR_NAME: &str = "requests";

/// The records could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    /// The file could not be created or written.
    #[error("{path}: {message}")]
    Write {
        /// The record file.
        path: PathBuf,
        /// Cause.
        message: String,
    },
}

/// The file of phase run `index` in `run_dir`.
pub fn phase_path(run_dir: &Path, index: u32) -> PathBuf {
    run_dir
        .join(DIR_NAME)
        .join(format!("phase-{index}.parquet"))
}

/// What every row of one phase's file shares.
#[derive(Debug, Clone)]
pub struct PhaseInfo {
    /// The phase's name and its index in the run.
    pub name: String,
    /// The phase run's index (as in `windows.jsonl`).
    pub index: u32,
    /// The phase's start (Unix ns, controller clock).
    pub start_unix_nanos: i64,
    /// Workload entries' (name, model), by index.
    pub entries: Vec<(String, String)>,
    /// The target's model (requests without a workload entry's own).
    pub model: String,
}

/// The columns, in order.
fn schema() -> SchemaRef {
    use DataType::{Float64, Int64, UInt32, UInt64, Utf8};
    let col = |name: &str, t: DataType, nullable: bool| Field::new(name, t, nullable);
    Arc::new(Schema::new(vec![
        col("phase", Utf8, false),
        col("phase_index", UInt32, false),
        col("agent", Utf8, false),
        col("request", UInt64, false),
        col("turn", UInt32, false),
        col("intended_unix_ns", Int64, false),
        col("sent_unix_ns", Int64, false),
        col("first_token_unix_ns", Int64, true),
        col("last_token_unix_ns", Int64, true),
        col("ttft_ms", Float64, true),
        col("e2e_ms", Float64, true),
        col("itl_mean_ms", Float64, true),
        col("itl_max_ms", Float64, true),
        col("output_tokens", UInt64, false),
        col("usage_output_tokens", UInt64, true),
        col("usage_input_tokens", UInt64, true),
        col("status", Utf8, false),
        col("error_class", Utf8, true),
        col("workload_entry", Utf8, true),
        col("model", Utf8, false),
    ]))
}

/// Column builders of the rows not yet handed to the writer.
#[derive(Default)]
struct Rows {
    phase: StringBuilder,
    phase_index: UInt32Builder,
    agent: StringBuilder,
    request: UInt64Builder,
    turn: UInt32Builder,
    times: [Int64Builder; 4],
    millis: [Float64Builder; 4],
    output_tokens: UInt64Builder,
    usage: [UInt64Builder; 2],
    status: StringBuilder,
    error_class: StringBuilder,
    entry: StringBuilder,
    model: StringBuilder,
    len: usize,
}

impl Rows {
    fn push(&mut self, p: &PhaseInfo, agent: &str, r: &RequestRecord) {
        let unix = |micros: u64| {
            p.start_unix_nanos
                .saturating_add(i64::try_from(micros.saturating_mul(1_000)).unwrap_or(i64::MAX))
        };
        let ms = |micros: u64| micros as f64 / 1e3;
        let since = |t: Option<u64>| t.map(|t| ms(t.saturating_sub(r.intended_micros)));
        let done = r.first_token_micros.is_some();
        self.phase.append_value(&p.name);
        self.phase_index.append_value(p.index);
        self.agent.append_value(agent);
        self.request.append_value(r.number);
        self.turn.append_value(r.turn);
        self.times[0].append_value(unix(r.intended_micros));
        self.times[1].append_value(unix(r.sent_micros));
        self.times[2].append_option(r.first_token_micros.map(unix));
        self.times[3].append_option(r.last_token_micros.map(unix));
        self.millis[0].append_option(since(r.first_token_micros));
        self.millis[1].append_option(since(r.last_token_micros));
        self.millis[2].append_option(done.then(|| ms(r.itl_mean_micros)));
        self.millis[3].append_option(done.then(|| ms(r.itl_max_micros)));
        self.output_tokens.append_value(r.output_tokens);
        self.usage[0].append_option(r.usage_reported.then_some(r.output_tokens));
        self.usage[1].append_option(r.usage_input_tokens);
        let status = match r.error_class.as_str() {
            "" => "ok",
            "cancelled" => "cancelled",
            _ => "failed",
        };
        self.status.append_value(status);
        self.error_class
            .append_option((!r.error_class.is_empty()).then_some(&r.error_class));
        let entry = r.workload_entry.and_then(|i| p.entries.get(i as usize));
        self.entry.append_option(entry.map(|(name, _)| name));
        let model = entry.map(|(_, m)| m).filter(|m| !m.is_empty());
        self.model.append_value(model.unwrap_or(&p.model));
        self.len += 1;
    }

    /// The buffered rows as a batch; the builders start over.
    fn take(&mut self, schema: &SchemaRef) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let [t0, t1, t2, t3] = &mut self.times;
        let [m0, m1, m2, m3] = &mut self.millis;
        let [u0, u1] = &mut self.usage;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.phase.finish()),
            Arc::new(self.phase_index.finish()),
            Arc::new(self.agent.finish()),
            Arc::new(self.request.finish()),
            Arc::new(self.turn.finish()),
            Arc::new(t0.finish()),
            Arc::new(t1.finish()),
            Arc::new(t2.finish()),
            Arc::new(t3.finish()),
            Arc::new(m0.finish()),
            Arc::new(m1.finish()),
            Arc::new(m2.finish()),
            Arc::new(m3.finish()),
            Arc::new(self.output_tokens.finish()),
            Arc::new(u0.finish()),
            Arc::new(u1.finish()),
            Arc::new(self.status.finish()),
            Arc::new(self.error_class.finish()),
            Arc::new(self.entry.finish()),
            Arc::new(self.model.finish()),
        ];
        self.len = 0;
        RecordBatch::try_new(schema.clone(), columns)
    }
}

/// The open record file of one phase run.
pub struct PhaseRecords {
    path: PathBuf,
    info: PhaseInfo,
    schema: SchemaRef,
    rows: Rows,
    writer: ArrowWriter<File>,
    written: u64,
}

impl PhaseRecords {
    /// Create (or truncate) the file of `info`'s phase in `run_dir`.
    pub fn create(run_dir: &Path, info: PhaseInfo) -> Result<Self, RecordsError> {
        let path = phase_path(run_dir, info.index);
        let fail = |message: String| RecordsError::Write {
            path: path.clone(),
            message,
        };
        std::fs::create_dir_all(run_dir.join(DIR_NAME)).map_err(|e| fail(e.to_string()))?;
        let file = File::create(&path).map_err(|e| fail(e.to_string()))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let schema = schema();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props))
            .map_err(|e| fail(e.to_string()))?;
        Ok(Self {
            path,
            info,
            schema,
            rows: Rows::default(),
            writer,
            written: 0,
        })
    }

    fn fail(&self, e: impl std::fmt::Display) -> RecordsError {
        RecordsError::Write {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Append `agent`'s records of one window.
    pub fn append(&mut self, agent: &str, records: &[RequestRecord]) -> Result<(), RecordsError> {
        for r in records {
            self.rows.push(&self.info, agent, r);
            if self.rows.len >= BATCH_ROWS {
                self.write_rows()?;
            }
        }
        Ok(())
    }

    fn write_rows(&mut self) -> Result<(), RecordsError> {
        if self.rows.len == 0 {
            return Ok(());
        }
        let batch = self.rows.take(&self.schema).map_err(|e| self.fail(e))?;
        self.written += batch.num_rows() as u64;
        self.writer.write(&batch).map_err(|e| self.fail(e))
    }

    /// Write what is buffered and the footer; returns the rows written.
    pub fn close(mut self) -> Result<u64, RecordsError> {
        self.write_rows()?;
        let fail = |e: parquet::errors::ParquetError| RecordsError::Write {
            path: self.path.clone(),
            message: e.to_string(),
        };
        self.writer.close().map_err(fail)?;
        Ok(self.written)
    }
}
