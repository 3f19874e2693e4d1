//! The one error type of the offline sources.

use std::path::PathBuf;

/// Everything that can go wrong while reading an offline source.
///
/// Messages name the thing at fault: the data source, the file (or the
/// PostgreSQL table/query), the column and, for bad values, the row.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// The Feast `DataSource` cannot be read by Larder (stream, request,
    /// warehouse sources; remote URIs; a push source without batch source).
    #[error("data source {source_name:?}: {message}")]
    UnsupportedSource { source_name: String, message: String },

    /// The `ReadSpec` or `SourceSpec` is unusable (empty window, unsupported
    /// feature type, identifier that cannot be quoted, ...).
    #[error("invalid read of data source {source_name:?}: {message}")]
    InvalidSpec { source_name: String, message: String },

    /// A file or directory could not be opened or listed.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A directory source holds no `*.parquet` file.
    #[error("directory {} contains no *.parquet files", path.display())]
    NoParquetFiles { path: PathBuf },

    /// The file is not valid Parquet (truncated, corrupt, unsupported encoding).
    #[error("file {}: not a readable Parquet file: {message}", path.display())]
    Parquet { path: PathBuf, message: String },

    /// A column the read needs is not in the file / table / query.
    #[error("column {column:?} not found in {location} (available columns: {available})")]
    MissingColumn {
        column: String,
        location: String,
        available: String,
    },

    /// A column's type cannot be converted to the declared feature type.
    #[error("column {column:?} in {location} has type {actual}, which cannot be read as {expected}")]
    WrongType {
        column: String,
        location: String,
        actual: String,
        expected: String,
    },

    /// One value cannot be converted (out of range, null list element, ...).
    #[error("column {column:?} in {location}, row {row}: {message}")]
    BadValue {
        column: String,
        location: String,
        row: u64,
        message: String,
    },

    /// A PostgreSQL error (connection, missing table or column, query error).
    #[error("PostgreSQL {location}: {message}")]
    Postgres { location: String, message: String },

    /// The entity frame of a historical request is unusable (no event
    /// timestamp, a missing join key column, a key of the wrong type, ...).
    #[error("entity frame: {message}")]
    EntityFrame { message: String },

    /// A historical request is inconsistent (feature names that collide, ...).
    #[error("invalid historical request: {message}")]
    InvalidRequest { message: String },

    /// The reader task died (panicked or was cancelled) before finishing.
    #[error("offline reader of data source {source_name:?} stopped unexpectedly: {message}")]
    ReaderFailed { source_name: String, message: String },
}

impl OfflineError {
    pub(crate) fn parquet(path: &std::path::Path, err: impl std::fmt::Display) -> Self {
        OfflineError::Parquet {
            path: path.to_path_buf(),
            message: err.to_string(),
        }
    }
}
