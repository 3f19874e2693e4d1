//! `SourceSpec::from_feast` on the DataSource shapes Feast's SDK writes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use larder_offline::{OfflineError, POSTGRES_SOURCE_CLASS, SourceLocation, SourceSpec};
use larder_protos::feast::core::DataSource;
use larder_protos::feast::core::data_source::{CustomSourceOptions, FileOptions, Options, PushOptions};

fn file_source(uri: &str) -> DataSource {
    DataSource {
        name: "driver_stats_source".into(),
        r#type: 1,
        timestamp_field: "event_timestamp".into(),
        created_timestamp_column: "created".into(),
        field_mapping: BTreeMap::from([("conv".to_string(), "conv_rate".to_string())]),
        options: Some(Options::FileOptions(FileOptions {
            uri: uri.into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn pg_source(conf: &str) -> DataSource {
    DataSource {
        name: "pg".into(),
        r#type: 6,
        data_source_class_type: POSTGRES_SOURCE_CLASS.into(),
        timestamp_field: "ts".into(),
        options: Some(Options::CustomOptions(CustomSourceOptions {
            configuration: conf.as_bytes().to_vec(),
        })),
        ..Default::default()
    }
}

fn unsupported(ds: &DataSource, url: Option<&str>) -> String {
    match SourceSpec::from_feast(ds, url) {
        Err(e @ OfflineError::UnsupportedSource { .. }) => e.to_string(),
        other => panic!("expected UnsupportedSource, got {other:?}"),
    }
}

#[test]
fn file_sources() {
    let s = SourceSpec::from_feast(&file_source("/data/x.parquet"), None).unwrap();
    assert_eq!(s.name, "driver_stats_source");
    assert_eq!(s.location, SourceLocation::Parquet(PathBuf::from("/data/x.parquet")));
    assert_eq!(s.timestamp_field, "event_timestamp");
    assert_eq!(s.created_timestamp_column.as_deref(), Some("created"));
    assert_eq!(s.source_column("conv_rate"), "conv");
    assert_eq!(s.source_column("acc_rate"), "acc_rate");

    let s = SourceSpec::from_feast(&file_source("file:///data/dir"), None).unwrap();
    assert_eq!(s.location, SourceLocation::Parquet(PathBuf::from("/data/dir")));

    let mut no_created = file_source("/x.parquet");
    no_created.created_timestamp_column.clear();
    assert_eq!(
        SourceSpec::from_feast(&no_created, None)
            .unwrap()
            .created_timestamp_column,
        None
    );

    let msg = unsupported(&file_source("s3://bucket/x.parquet"), None);
    assert!(
        msg.contains("s3://bucket/x.parquet") && msg.contains("driver_stats_source"),
        "{msg}"
    );
    assert!(unsupported(&file_source(""), None).contains("empty uri"));
    let mut no_ts = file_source("/x.parquet");
    no_ts.timestamp_field.clear();
    assert!(unsupported(&no_ts, None).contains("timestamp_field"));
}

#[test]
fn push_sources_read_their_batch_source() {
    let push = DataSource {
        name: "driver_stats_push".into(),
        r#type: 9,
        batch_source: Some(Box::new(file_source("/data/x.parquet"))),
        options: Some(Options::PushOptions(PushOptions {})),
        ..Default::default()
    };
    let s = SourceSpec::from_feast(&push, None).unwrap();
    assert_eq!(s.location, SourceLocation::Parquet(PathBuf::from("/data/x.parquet")));
    assert_eq!(s.timestamp_field, "event_timestamp");

    let orphan = DataSource {
        name: "p".into(),
        r#type: 9,
        ..Default::default()
    };
    assert!(unsupported(&orphan, None).contains("batch_source"));
}

#[test]
fn postgres_sources() {
    let url = "postgres://u:pw@db/feast";
    let s = SourceSpec::from_feast(
        &pg_source(r#"{"name": "pg", "query": "", "table": "public.stats"}"#),
        Some(url),
    )
    .unwrap();
    assert_eq!(
        s.location,
        SourceLocation::Postgres {
            url: url.into(),
            table: Some("public.stats".into()),
            query: None
        }
    );
    assert!(!format!("{s:?}").contains("pw"), "Debug must not print the URL");

    let s = SourceSpec::from_feast(
        &pg_source(r#"{"name": "pg", "query": "SELECT 1", "table": ""}"#),
        Some(url),
    )
    .unwrap();
    assert_eq!(
        s.location,
        SourceLocation::Postgres {
            url: url.into(),
            table: None,
            query: Some("SELECT 1".into())
        }
    );
    // Feast reads the table when both are set.
    let s = SourceSpec::from_feast(
        &pg_source(r#"{"name": "pg", "query": "SELECT 1", "table": "t"}"#),
        Some(url),
    )
    .unwrap();
    assert!(matches!(
        s.location,
        SourceLocation::Postgres {
            table: Some(_),
            query: None,
            ..
        }
    ));

    assert!(unsupported(&pg_source(r#"{"name": "pg", "query": "", "table": "t"}"#), None).contains("connection"));
    assert!(unsupported(&pg_source(r#"{"name": "pg", "query": "", "table": ""}"#), Some(url)).contains("neither"));
    assert!(unsupported(&pg_source("{not json"), Some(url)).contains("JSON"));
    let mut other = pg_source("{}");
    other.data_source_class_type = "my.CustomSource".into();
    assert!(unsupported(&other, Some(url)).contains("my.CustomSource"));
}

#[test]
fn other_source_types_are_refused() {
    for (t, needle) in [
        (7, "request"),
        (3, "stream"),
        (4, "stream"),
        (2, "type 2"),
        (0, "INVALID"),
    ] {
        let ds = DataSource {
            name: "s".into(),
            r#type: t,
            timestamp_field: "ts".into(),
            ..Default::default()
        };
        let msg = unsupported(&ds, None);
        assert!(msg.contains(needle), "type {t}: {msg}");
    }
}
