//! Entity frames in, training sets out.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::HistoricalError;

fn file_error(path: &Path, message: impl std::fmt::Display) -> HistoricalError {
    HistoricalError::File {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// An entity frame from a `.parquet` or `.csv` file (CSV: a header row;
/// column types inferred from the first 10,000 rows, timestamps as
/// RFC 3339 text or what Arrow's CSV reader recognises).
pub fn read_entity_file(path: &Path) -> Result<RecordBatch, HistoricalError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let open = || File::open(path).map_err(|e| file_error(path, e));
    let batches: Vec<RecordBatch> = match ext.as_str() {
        "parquet" => {
            let reader = ParquetRecordBatchReaderBuilder::try_new(open()?)
                .and_then(|b| b.build())
                .map_err(|e| file_error(path, format!("not a readable Parquet file: {e}")))?;
            reader
                .collect::<Result<_, _>>()
                .map_err(|e| file_error(path, format!("not a readable Parquet file: {e}")))?
        }
        "csv" => {
            use arrow::csv::reader::Format;
            let format = Format::default().with_header(true);
            let (schema, _) = format
                .infer_schema(open()?, Some(10_000))
                .map_err(|e| file_error(path, format!("not a readable CSV file: {e}")))?;
            let reader = arrow::csv::ReaderBuilder::new(Arc::new(schema))
                .with_format(format)
                .build(open()?)
                .map_err(|e| file_error(path, format!("not a readable CSV file: {e}")))?;
            reader
                .collect::<Result<_, _>>()
                .map_err(|e| file_error(path, format!("not a readable CSV file: {e}")))?
        }
        _ => return Err(file_error(path, "entity files must end in .parquet or .csv")),
    };
    let Some(first) = batches.first() else {
        return Err(file_error(path, "the file holds no rows"));
    };
    let schema = first.schema();
    arrow::compute::concat_batches(&schema, &batches).map_err(|e| file_error(path, e))
}

/// Write `batch` to `path` as Parquet: to a temporary file beside it,
/// synced, then renamed over `path`, so readers never see a partial file.
pub fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<(), HistoricalError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| file_error(path, "not a file path"))?
        .to_string_lossy();
    let tmp: PathBuf = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> Result<(), HistoricalError> {
        let file = File::create(&tmp).map_err(|e| file_error(&tmp, e))?;
        let mut w = ArrowWriter::try_new(file, batch.schema(), None).map_err(|e| file_error(&tmp, e))?;
        w.write(batch).map_err(|e| file_error(&tmp, e))?;
        let file = w.into_inner().map_err(|e| file_error(&tmp, e))?;
        file.sync_all().map_err(|e| file_error(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| file_error(path, e))
    };
    let result = write();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
