//! What to read ([`SourceSpec`], from a Feast `DataSource`) and how
//! ([`ReadSpec`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use larder_model::types::FeatureType;
use larder_protos::feast::core::DataSource;
use larder_protos::feast::core::data_source::Options;

use crate::OfflineError;
use crate::target::Target;

/// `data_source_class_type` of Feast's PostgreSQL source.
pub const POSTGRES_SOURCE_CLASS: &str =
    "feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source.PostgreSQLSource";

/// Join key Feast uses for views without entities; its value is always `""`.
pub const DUMMY_ENTITY_ID: &str = "__dummy_id";

/// Where a source's rows live.
#[derive(Clone, PartialEq, Eq)]
pub enum SourceLocation {
    /// A Parquet file, or a directory whose `*.parquet` files (found
    /// recursively, hidden and `_`-prefixed entries skipped, in path order)
    /// together form the source.
    Parquet(PathBuf),
    /// A PostgreSQL table (`name` or `schema.name`) or query.
    Postgres {
        url: String,
        table: Option<String>,
        query: Option<String>,
    },
}

impl fmt::Debug for SourceLocation {
    /// Never prints the connection URL (it may hold a password).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceLocation::Parquet(p) => f.debug_tuple("Parquet").field(p).finish(),
            SourceLocation::Postgres { table, query, .. } => f
                .debug_struct("Postgres")
                .field("url", &"<redacted>")
                .field("table", table)
                .field("query", query)
                .finish(),
        }
    }
}

/// A readable offline source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    /// The data source's name (used in messages).
    pub name: String,
    pub location: SourceLocation,
    /// Event-time column (a Feast feature/field name: mapped through
    /// `field_mapping` like the others).
    pub timestamp_field: String,
    pub created_timestamp_column: Option<String>,
    /// Source column → feature (or join key / timestamp) name, as in Feast.
    pub field_mapping: BTreeMap<String, String>,
}

impl SourceSpec {
    /// The source column that holds `name`: the mapping key whose value is
    /// `name`, else `name` itself (Feast's reverse field mapping).
    pub fn source_column<'a>(&'a self, name: &'a str) -> &'a str {
        self.field_mapping
            .iter()
            .find(|(_, v)| v.as_str() == name)
            .map(|(k, _)| k.as_str())
            .unwrap_or(name)
    }

    /// A Larder source from a Feast `DataSource`: file sources (local paths
    /// or `file://` URIs), PostgreSQL sources (need `postgres_url`, the
    /// offline store's connection URL) and push sources (read through their
    /// `batch_source`). Anything else is a clear error.
    pub fn from_feast(ds: &DataSource, postgres_url: Option<&str>) -> Result<Self, OfflineError> {
        let unsupported = |message: String| OfflineError::UnsupportedSource {
            source_name: ds.name.clone(),
            message,
        };
        let location = match ds.r#type {
            1 => {
                let Some(Options::FileOptions(fo)) = &ds.options else {
                    return Err(unsupported("file source without file_options".into()));
                };
                if let Some(ff) = &fo.file_format
                    && ff.format.is_some()
                    && !matches!(
                        ff.format,
                        Some(larder_protos::feast::core::file_format::Format::ParquetFormat(_))
                    )
                {
                    return Err(unsupported(
                        "only Parquet file sources are supported (not Delta)".into(),
                    ));
                }
                let uri = fo.uri.trim();
                if uri.is_empty() {
                    return Err(unsupported("file source has an empty uri".into()));
                }
                let path = if let Some(rest) = uri.strip_prefix("file://") {
                    rest
                } else if uri.contains("://") {
                    return Err(unsupported(format!(
                        "file source uri {uri:?} is remote; only local paths and file:// URIs are supported"
                    )));
                } else {
                    uri
                };
                SourceLocation::Parquet(PathBuf::from(path))
            }
            9 => {
                let Some(batch) = ds.batch_source.as_deref() else {
                    return Err(unsupported(
                        "push source has no batch_source to materialize from".into(),
                    ));
                };
                return SourceSpec::from_feast(batch, postgres_url);
            }
            6 => {
                if ds.data_source_class_type != POSTGRES_SOURCE_CLASS {
                    return Err(unsupported(format!(
                        "custom source class {:?} is not supported (only PostgreSQLSource)",
                        ds.data_source_class_type
                    )));
                }
                let Some(Options::CustomOptions(co)) = &ds.options else {
                    return Err(unsupported("PostgreSQL source without custom_options".into()));
                };
                let conf: serde_json::Value = serde_json::from_slice(&co.configuration)
                    .map_err(|e| unsupported(format!("PostgreSQL source configuration is not valid JSON: {e}")))?;
                let field = |k: &str| {
                    conf.get(k)
                        .and_then(|v| v.as_str())
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                };
                let (table, query) = (field("table"), field("query"));
                if table.is_none() && query.is_none() {
                    return Err(unsupported("PostgreSQL source has neither a table nor a query".into()));
                }
                let Some(url) = postgres_url else {
                    return Err(unsupported(
                        "PostgreSQL source needs the offline store's PostgreSQL connection, and none is configured"
                            .into(),
                    ));
                };
                // Feast reads the table when both are set.
                let query = if table.is_some() { None } else { query };
                SourceLocation::Postgres {
                    url: url.to_string(),
                    table,
                    query,
                }
            }
            7 => return Err(unsupported("request sources hold no stored data to materialize".into())),
            3 | 4 => {
                return Err(unsupported(
                    "stream sources are not supported; materialize from their batch source".into(),
                ));
            }
            0 => return Err(unsupported("source type is INVALID (0)".into())),
            t => {
                return Err(unsupported(format!(
                    "source type {t} is not supported (file, PostgreSQL and push only)"
                )));
            }
        };
        if ds.timestamp_field.trim().is_empty() {
            return Err(unsupported("no timestamp_field".into()));
        }
        Ok(SourceSpec {
            name: ds.name.clone(),
            location,
            timestamp_field: ds.timestamp_field.clone(),
            created_timestamp_column: Some(ds.created_timestamp_column.clone()).filter(|c| !c.is_empty()),
            field_mapping: ds.field_mapping.clone(),
        })
    }

    /// Where errors say the data is: the file path, or the PostgreSQL
    /// table/query (never the URL).
    pub(crate) fn postgres_location(&self) -> String {
        match &self.location {
            SourceLocation::Postgres { table: Some(t), .. } => format!("table {t:?} of data source {:?}", self.name),
            _ => format!("query of data source {:?}", self.name),
        }
    }
}

/// What to read from a source.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadSpec {
    /// The view's join keys (names as in the entity key) and types. Empty
    /// means an entityless view: every row gets the key `__dummy_id = ""`.
    /// A join key named `__dummy_id` that the source lacks is `""` too.
    pub join_keys: Vec<(String, FeatureType)>,
    /// Feature names and declared types; `RowBatch::features` keeps this order.
    pub features: Vec<(String, FeatureType)>,
    /// Window start, ns since the epoch (inclusive).
    pub start_ns: i64,
    /// Window end, ns since the epoch (exclusive).
    pub end_ns: i64,
    /// Rows per emitted `RowBatch`.
    pub batch_rows: usize,
    /// Most distinct keys held while finding the latest rows (Parquet). Each
    /// held key costs its row: about 600 bytes for an Int64 key and 10
    /// scalar features (one a short string), measured; 100,000 keys ≈ 60 MiB.
    /// With more distinct keys, a key may be emitted more than once (see
    /// [`crate::read_latest`]).
    pub dedup_capacity: usize,
}

impl ReadSpec {
    pub const DEFAULT_BATCH_ROWS: usize = 10_000;
    pub const DEFAULT_DEDUP_CAPACITY: usize = 100_000;

    /// A read with the default batch size and dedup capacity.
    pub fn new(
        join_keys: Vec<(String, FeatureType)>,
        features: Vec<(String, FeatureType)>,
        start_ns: i64,
        end_ns: i64,
    ) -> Self {
        ReadSpec {
            join_keys,
            features,
            start_ns,
            end_ns,
            batch_rows: Self::DEFAULT_BATCH_ROWS,
            dedup_capacity: Self::DEFAULT_DEDUP_CAPACITY,
        }
    }
}

/// A join key of a plan.
pub(crate) struct PlanKey {
    pub name: String,
    pub declared: FeatureType,
    pub scalar: crate::target::Scalar,
    /// Source column; `None` for the implicit `__dummy_id` key (always `""`).
    pub column: Option<String>,
}

/// A feature of a plan.
pub(crate) struct PlanFeature {
    pub declared: FeatureType,
    pub target: Target,
    pub column: String,
}

/// A checked read plan shared by the Parquet and PostgreSQL readers.
pub(crate) struct Plan {
    /// Join keys in entity-key order (sorted by name when more than one).
    pub keys: Vec<PlanKey>,
    /// Features in `ReadSpec::features` order.
    pub features: Vec<PlanFeature>,
    pub ts_col: String,
    pub created_col: Option<String>,
    pub key_prefix: Vec<u8>,
    pub feature_names: std::sync::Arc<[String]>,
}

impl Plan {
    /// Check `spec` against `source` and resolve source columns.
    pub(crate) fn new(source: &SourceSpec, spec: &ReadSpec) -> Result<Self, OfflineError> {
        let invalid = |message: String| OfflineError::InvalidSpec {
            source_name: source.name.clone(),
            message,
        };
        if spec.batch_rows == 0 {
            return Err(invalid("batch_rows must be at least 1".into()));
        }
        if spec.dedup_capacity == 0 {
            return Err(invalid("dedup_capacity must be at least 1".into()));
        }
        let mut keys = Vec::new();
        if spec.join_keys.is_empty() {
            keys.push(PlanKey {
                name: DUMMY_ENTITY_ID.to_string(),
                declared: FeatureType::STRING,
                scalar: crate::target::Scalar::String,
                column: None,
            });
        }
        for (name, t) in &spec.join_keys {
            let scalar = match Target::from_feature_type(*t) {
                Some(Target::Scalar(s)) if s.key_tag().is_some() => s,
                _ => {
                    return Err(invalid(format!(
                        "join key {name:?} has type {t}, which cannot be part of an entity key (Int64, Int32, String, Bytes, UnixTimestamp)"
                    )));
                }
            };
            if keys.iter().any(|k: &PlanKey| &k.name == name) {
                return Err(invalid(format!("join key {name:?} is listed twice")));
            }
            keys.push(PlanKey {
                name: name.clone(),
                declared: *t,
                scalar,
                column: Some(source.source_column(name).to_string()),
            });
        }
        if keys.len() > 1 {
            keys.sort_by(|a, b| a.name.cmp(&b.name));
        }
        let mut features = Vec::new();
        for (name, t) in &spec.features {
            let Some(target) = Target::from_feature_type(*t) else {
                return Err(invalid(format!(
                    "feature {name:?} has type {t}, which Larder cannot read from an offline source"
                )));
            };
            features.push(PlanFeature {
                declared: *t,
                target,
                column: source.source_column(name).to_string(),
            });
        }
        let key_prefix = crate::target::key_prefix(keys.iter().map(|k| k.name.as_str()));
        let feature_names: std::sync::Arc<[String]> = spec.features.iter().map(|(n, _)| n.clone()).collect();
        Ok(Plan {
            keys,
            features,
            ts_col: source.source_column(&source.timestamp_field).to_string(),
            created_col: source
                .created_timestamp_column
                .as_deref()
                .map(|c| source.source_column(c).to_string()),
            key_prefix,
            feature_names,
        })
    }
}
