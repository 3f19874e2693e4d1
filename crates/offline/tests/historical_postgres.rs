//! Historical retrieval from PostgreSQL sources (the join pushed into the
//! database) gives the same training sets as from Parquet sources holding
//! the same rows (the Parquet path is pinned by `historical_oracle.rs`):
//! seeded random data with ties, null created timestamps, ttl boundaries,
//! unknown and null keys, composite keys and entityless views, against the
//! local PostgreSQL server (a database per test).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use larder_model::types::FeatureType;
use larder_offline::historical::{HistoricalJoinKey, HistoricalRequest, HistoricalView, get_historical_features};
use larder_offline::{SourceLocation, SourceSpec};
use larder_testkit::{PgDatabase, Rng};
use sqlx::{Connection, Executor, PgConnection};

const BASE_US: i64 = 1_704_067_200_000_000;
const MIN_US: i64 = 60_000_000;

/// One feature row: (driver, city, event µs, created µs or null, value, label, flag).
#[derive(Clone)]
struct Row {
    driver: i64,
    city: String,
    event: i64,
    created: Option<i64>,
    value: Option<f64>,
    label: Option<String>,
    flag: Option<bool>,
}

fn rows(rng: &mut Rng, n: usize) -> Vec<Row> {
    (0..n)
        .map(|_| Row {
            driver: 1 + rng.below(8) as i64,
            city: ["ams", "ber", "cdg"][rng.below(3) as usize].to_string(),
            // Coarse times: many equal event timestamps.
            event: BASE_US + rng.below(40) as i64 * 15 * MIN_US,
            created: (!rng.percent(20)).then(|| BASE_US + rng.below(5) as i64 * MIN_US),
            value: (!rng.percent(10)).then(|| rng.below(1000) as f64 / 4.0),
            label: (!rng.percent(10)).then(|| format!("l{}", rng.below(50))),
            flag: (!rng.percent(10)).then(|| rng.percent(50)),
        })
        .collect()
}

fn batch(rows: &[Row]) -> RecordBatch {
    let ts = |v: Vec<Option<i64>>| -> ArrayRef { Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC")) };
    let schema = Arc::new(Schema::new(vec![
        Field::new("driver", DataType::Int64, true),
        Field::new("city", DataType::Utf8, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new(
            "created",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("value", DataType::Float64, true),
        Field::new("label", DataType::Utf8, true),
        Field::new("flag", DataType::Boolean, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(rows.iter().map(|r| r.driver).collect::<Vec<_>>())),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.city.clone()).collect::<Vec<_>>(),
            )),
            ts(rows.iter().map(|r| Some(r.event)).collect()),
            ts(rows.iter().map(|r| r.created).collect()),
            Arc::new(Float64Array::from(rows.iter().map(|r| r.value).collect::<Vec<_>>())),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.label.clone()).collect::<Vec<_>>(),
            )),
            Arc::new(BooleanArray::from(rows.iter().map(|r| r.flag).collect::<Vec<_>>())),
        ],
    )
    .unwrap()
}

fn frame(rng: &mut Rng, n: usize) -> RecordBatch {
    let mut drivers = Vec::new();
    let mut cities = Vec::new();
    let mut ts = Vec::new();
    for _ in 0..n {
        drivers.push((!rng.percent(5)).then(|| rng.below(10) as i64)); // 0 and 9 have no rows
        cities.push(Some(["ams", "ber", "cdg", "dub"][rng.below(4) as usize].to_string()));
        // On the quarter hours (ties with feature rows, ttl boundaries), or between.
        let t = BASE_US - 60 * MIN_US + rng.below(12 * 4 + 8) as i64 * 15 * MIN_US;
        ts.push(if rng.percent(30) {
            t + rng.below(15) as i64 * MIN_US
        } else {
            t
        });
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("driver_id", DataType::Int64, true),
        Field::new("city_code", DataType::Utf8, true),
        Field::new(
            "event_timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            false,
        ),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(drivers)),
            Arc::new(StringArray::from(cities)),
            Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("+00:00")),
        ],
    )
    .unwrap()
}

fn features() -> Vec<(String, FeatureType)> {
    vec![
        ("value".into(), FeatureType::DOUBLE),
        ("label".into(), FeatureType::STRING),
        ("flag".into(), FeatureType::BOOL),
    ]
}

fn views(location: &SourceLocation, ttl_ns: i64) -> Vec<HistoricalView> {
    let source = SourceSpec {
        name: "stats".into(),
        location: location.clone(),
        timestamp_field: "event_timestamp".into(),
        created_timestamp_column: Some("created".into()),
        // Source column `ts` holds the view's `event_timestamp`; `driver` its `driver_id`.
        field_mapping: BTreeMap::from([
            ("ts".into(), "event_timestamp".into()),
            ("driver".into(), "driver_id".into()),
        ]),
    };
    let key = |name: &str, column: &str, t| HistoricalJoinKey {
        name: name.into(),
        column: column.into(),
        value_type: t,
    };
    vec![
        HistoricalView {
            name: "by_driver".into(),
            shown_as: "by_driver".into(),
            source: source.clone(),
            join_keys: vec![key("driver_id", "driver_id", FeatureType::INT64)],
            features: features(),
            ttl_ns,
        },
        HistoricalView {
            name: "by_driver_city".into(),
            shown_as: "pair".into(),
            source: source.clone(),
            join_keys: vec![
                key("driver_id", "driver_id", FeatureType::INT64),
                key("city", "city_code", FeatureType::STRING),
            ],
            features: features(),
            ttl_ns,
        },
        HistoricalView {
            name: "global".into(),
            shown_as: "global".into(),
            source,
            join_keys: vec![],
            features: features(),
            ttl_ns,
        },
    ]
}

async fn load_table(url: &str, rows: &[Row]) {
    let mut conn = PgConnection::connect(url).await.unwrap();
    conn.execute(
        "DROP TABLE IF EXISTS stats; CREATE TABLE stats (driver bigint, city text, ts timestamptz, created timestamptz, \
         value double precision, label text, flag boolean)",
    )
    .await
    .unwrap();
    let mut copy = conn.copy_in_raw("COPY stats FROM STDIN").await.unwrap();
    let mut text = String::new();
    let t = |us: i64| {
        chrono::DateTime::from_timestamp_micros(us)
            .unwrap()
            .format("%Y-%m-%d %H:%M:%S%.6f+00")
            .to_string()
    };
    let opt = |v: Option<String>| v.unwrap_or_else(|| "\\N".into());
    for r in rows {
        writeln!(
            text,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            r.driver,
            r.city,
            t(r.event),
            opt(r.created.map(t)),
            opt(r.value.map(|v| v.to_string())),
            opt(r.label.clone()),
            opt(r.flag.map(|b| b.to_string())),
        )
        .unwrap();
    }
    copy.send(text.into_bytes()).await.unwrap();
    copy.finish().await.unwrap();
    conn.close().await.unwrap();
}

fn cell(a: &ArrayRef, i: usize) -> String {
    if a.is_null(i) {
        return "null".into();
    }
    arrow::util::display::array_value_to_string(a, i).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sources_answer_as_parquet_sources_do() {
    let db = PgDatabase::create("larder_hist").await;
    let dir = tempfile::tempdir().unwrap();
    let mut compared = 0usize;
    for seed in 0..40u64 {
        let mut rng = Rng(seed);
        let n_rows = 20 + rng.below(200) as usize;
        let data = rows(&mut rng, n_rows);
        let n_entities = 1 + rng.below(120) as usize;
        let entities = frame(&mut rng, n_entities);
        let ttl_ns = match rng.below(3) {
            0 => 0,
            1 => 30 * MIN_US * 1_000,
            _ => 2 * 60 * MIN_US * 1_000,
        };
        // Ties in the data must resolve the same way: the Parquet file keeps the rows in
        // the order the table lists them (COPY order, a fresh table: insertion order).
        load_table(db.url(), &data).await;
        let path = dir.path().join(format!("stats_{seed}.parquet"));
        let mut w =
            parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), batch(&data).schema(), None)
                .unwrap();
        w.write(&batch(&data)).unwrap();
        w.close().unwrap();

        let pg = SourceLocation::Postgres {
            url: db.url().to_string(),
            table: Some("stats".into()),
            query: None,
        };
        for full in [true, false] {
            let all = views(&SourceLocation::Parquet(path.clone()), ttl_ns);
            let pick = if full { all.len() } else { 1 };
            let request = |location: &SourceLocation| HistoricalRequest {
                views: views(location, ttl_ns).into_iter().take(pick).collect(),
                full_feature_names: full,
            };
            let (entities_a, entities_b) = (entities.clone(), entities.clone());
            let parquet_request = request(&SourceLocation::Parquet(path.clone()));
            let pg_request = request(&pg);
            let want = tokio::task::spawn_blocking(move || {
                get_historical_features(&entities_a, &parquet_request, &mut |_| {})
            })
            .await
            .unwrap()
            .unwrap();
            let got =
                tokio::task::spawn_blocking(move || get_historical_features(&entities_b, &pg_request, &mut |_| {}))
                    .await
                    .unwrap()
                    .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            assert_eq!(got.batch.num_rows(), entities.num_rows());
            assert_eq!(got.batch.schema().fields().len(), want.batch.schema().fields().len());
            for c in 0..want.batch.num_columns() {
                let name = want.batch.schema().field(c).name().clone();
                for r in 0..entities.num_rows() {
                    assert_eq!(
                        cell(got.batch.column(c), r),
                        cell(want.batch.column(c), r),
                        "seed {seed}, ttl {ttl_ns}, column {name}, row {r}"
                    );
                    compared += 1;
                }
            }
            assert_eq!(
                got.stats.iter().map(|s| s.rows_matched).collect::<Vec<_>>(),
                want.stats.iter().map(|s| s.rows_matched).collect::<Vec<_>>(),
                "seed {seed}"
            );
        }
    }
    assert!(compared > 20_000, "{compared}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_errors_are_clear() {
    let db = PgDatabase::create("larder_hist").await;
    let mut rng = Rng(7);
    load_table(db.url(), &rows(&mut rng, 10)).await;
    let entities = frame(&mut rng, 5);
    let mut request = HistoricalRequest {
        views: views(
            &SourceLocation::Postgres {
                url: db.url().to_string(),
                table: Some("no_such_table".into()),
                query: None,
            },
            0,
        )
        .into_iter()
        .take(1)
        .collect(),
        full_feature_names: false,
    };
    let e2 = entities.clone();
    let r2 = request.clone();
    let err = tokio::task::spawn_blocking(move || get_historical_features(&e2, &r2, &mut |_| {}))
        .await
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(err.contains("no_such_table"), "{err}");
    request.views[0].source.location = SourceLocation::Postgres {
        url: db.url().to_string(),
        table: Some("stats".into()),
        query: None,
    };
    request.views[0]
        .features
        .push(("missing_column".into(), FeatureType::INT64));
    let err = tokio::task::spawn_blocking(move || get_historical_features(&entities, &request, &mut |_| {}))
        .await
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing_column"), "{err}");
}
