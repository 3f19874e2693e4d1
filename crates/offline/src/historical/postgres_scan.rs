//! Historical retrieval from a PostgreSQL source, the join pushed into the
//! database as Feast's PostgreSQL offline store pushes it, but as a sort
//! instead of a fan-out: the entity rows are copied into a temporary table,
//! their distinct (key, timestamp) points are merged with the source's rows
//! in one ordered window per key, and each point takes the last feature row
//! before it (`count(...) OVER` numbers the groups a feature row starts,
//! `first_value(...) OVER` hands the row to the points of its group). Cost:
//! one sort of points + rows, never points × rows per key.
//!
//! Semantics are the Parquet path's: newest `event_ts <= row ts`, within the
//! ttl, ties to the newer created timestamp (null loses), then to the row
//! the database lists first. Timestamps compare in microseconds, the
//! database's resolution: entity times are truncated to it.

use arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Float32Builder, Float64Builder, Int32Builder, Int64Builder,
    ListBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Connection, Executor, Row};

use super::keys::KeyColumns;
use super::{HistoricalView, ViewStats};
use crate::postgres::{connect, from_clause, quote_ident};
use crate::target::{Scalar, Target};
use crate::{OfflineError, SourceLocation};

/// The database type a declared feature type is read as, and its builder.
fn column_of(t: Target) -> Option<(&'static str, Box<dyn ArrayBuilder>)> {
    let scalar = |s: Scalar| -> Option<(&'static str, Box<dyn ArrayBuilder>)> {
        Some(match s {
            Scalar::Int64 => ("bigint", Box::new(Int64Builder::new())),
            Scalar::Int32 => ("integer", Box::new(Int32Builder::new())),
            Scalar::Float => ("real", Box::new(Float32Builder::new())),
            Scalar::Double => ("double precision", Box::new(Float64Builder::new())),
            Scalar::Bool => ("boolean", Box::new(BooleanBuilder::new())),
            Scalar::Bytes => ("bytea", Box::new(BinaryBuilder::new())),
            Scalar::UnixTimestamp => (
                "timestamptz",
                Box::new(TimestampMicrosecondBuilder::new().with_timezone("UTC")),
            ),
            Scalar::String | Scalar::Json | Scalar::Uuid | Scalar::TimeUuid | Scalar::Decimal => {
                ("text", Box::new(StringBuilder::new()))
            }
        })
    };
    match t {
        Target::Scalar(s) => scalar(s),
        Target::List(s) => Some(match s {
            Scalar::Int64 => ("bigint[]", Box::new(ListBuilder::new(Int64Builder::new()))),
            Scalar::Int32 => ("integer[]", Box::new(ListBuilder::new(Int32Builder::new()))),
            Scalar::Float => ("real[]", Box::new(ListBuilder::new(Float32Builder::new()))),
            Scalar::Double => ("double precision[]", Box::new(ListBuilder::new(Float64Builder::new()))),
            Scalar::Bool => ("boolean[]", Box::new(ListBuilder::new(BooleanBuilder::new()))),
            Scalar::String => ("text[]", Box::new(ListBuilder::new(StringBuilder::new()))),
            Scalar::Bytes => ("bytea[]", Box::new(ListBuilder::new(BinaryBuilder::new()))),
            _ => return None,
        }),
    }
}

fn downcast<B: 'static>(b: &mut Box<dyn ArrayBuilder>) -> Result<&mut B, String> {
    b.as_any_mut()
        .downcast_mut::<B>()
        .ok_or_else(|| "internal error: builder of another type".to_string())
}

/// Append column `i` of `row` to `b`, decoded as `t`.
fn append(row: &PgRow, i: usize, t: Target, b: &mut Box<dyn ArrayBuilder>) -> Result<(), String> {
    fn get<'r, T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>>(
        row: &'r PgRow,
        i: usize,
    ) -> Result<Option<T>, String> {
        row.try_get::<Option<T>, _>(i).map_err(|e| e.to_string())
    }
    macro_rules! list {
        ($builder:ty, $t:ty) => {{
            let lb = downcast::<ListBuilder<$builder>>(b)?;
            match get::<Vec<Option<$t>>>(row, i)? {
                Some(values) => {
                    for v in values {
                        lb.values().append_option(v);
                    }
                    lb.append(true);
                }
                None => lb.append(false),
            }
        }};
    }
    match t {
        Target::Scalar(Scalar::Int64) => downcast::<Int64Builder>(b)?.append_option(get::<i64>(row, i)?),
        Target::Scalar(Scalar::Int32) => downcast::<Int32Builder>(b)?.append_option(get::<i32>(row, i)?),
        Target::Scalar(Scalar::Float) => downcast::<Float32Builder>(b)?.append_option(get::<f32>(row, i)?),
        Target::Scalar(Scalar::Double) => downcast::<Float64Builder>(b)?.append_option(get::<f64>(row, i)?),
        Target::Scalar(Scalar::Bool) => downcast::<BooleanBuilder>(b)?.append_option(get::<bool>(row, i)?),
        Target::Scalar(Scalar::Bytes) => downcast::<BinaryBuilder>(b)?.append_option(get::<Vec<u8>>(row, i)?),
        Target::Scalar(Scalar::UnixTimestamp) => downcast::<TimestampMicrosecondBuilder>(b)?
            .append_option(get::<DateTime<Utc>>(row, i)?.map(|d| d.timestamp_micros())),
        Target::Scalar(_) => downcast::<StringBuilder>(b)?.append_option(get::<String>(row, i)?),
        Target::List(Scalar::Int64) => list!(Int64Builder, i64),
        Target::List(Scalar::Int32) => list!(Int32Builder, i32),
        Target::List(Scalar::Float) => list!(Float32Builder, f32),
        Target::List(Scalar::Double) => list!(Float64Builder, f64),
        Target::List(Scalar::Bool) => list!(BooleanBuilder, bool),
        Target::List(Scalar::String) => list!(StringBuilder, String),
        Target::List(Scalar::Bytes) => list!(BinaryBuilder, Vec<u8>),
        Target::List(_) => return Err("internal error: unsupported list type".into()),
    }
    Ok(())
}

/// The SQL of one view's as-of join over `pg_temp.larder_entities`
/// (columns `__row`, `__ts`, `__k0…`). Parameters: `$1` the oldest useful
/// event time, `$2` the newest, `$3` the ttl in microseconds (0: none).
fn join_sql(view: &HistoricalView, casts: &[&str]) -> Result<String, String> {
    let src = &view.source;
    let from = from_clause(src)?;
    let ts = quote_ident(src.source_column(&src.timestamp_field))?;
    let created = match src.created_timestamp_column.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => format!("s.{}", quote_ident(src.source_column(c))?),
        None => "NULL::timestamptz".to_string(),
    };
    let n = view.join_keys.len();
    let k: Vec<String> = (0..n).map(|i| format!("__k{i}")).collect();
    let mut f_select = Vec::new();
    let mut not_null = Vec::new();
    for (i, key) in view.join_keys.iter().enumerate() {
        let col = quote_ident(src.source_column(&key.name))?;
        f_select.push(format!("s.{col} AS __k{i}"));
        not_null.push(format!(" AND s.{col} IS NOT NULL"));
    }
    f_select.push(format!("s.{ts}::timestamptz AS __ts"));
    f_select.push(format!("{created}::timestamptz AS __cr"));
    for (i, ((name, _), cast)) in view.features.iter().zip(casts).enumerate() {
        let col = quote_ident(src.source_column(name))?;
        f_select.push(format!("s.{col}::{cast} AS __f{i}"));
    }
    f_select.push("row_number() OVER () AS __fid".to_string());
    let keys = k.join(", ");
    let with_keys = |prefix: &str| {
        if n == 0 {
            String::new()
        } else {
            format!("{prefix}{keys}, ")
        }
    };
    let partition = if n == 0 {
        String::new()
    } else {
        format!("PARTITION BY {keys} ")
    };
    let order = "ORDER BY __ts, __kind, __cr NULLS FIRST, __fid DESC";
    let point_keys_not_null: String = k.iter().map(|c| format!(" AND {c} IS NOT NULL")).collect();
    let key_join: String = k.iter().map(|c| format!(" AND a.{c} = e.{c}")).collect();
    let features: Vec<String> = (0..view.features.len()).map(|i| format!("v.__f{i}")).collect();
    let feature_list = if features.is_empty() {
        String::new()
    } else {
        format!(", {}", features.join(", "))
    };
    Ok(format!(
        "WITH f AS MATERIALIZED (SELECT {f_select} FROM {from} s WHERE s.{ts} <= $2 AND s.{ts} >= $1{not_null}), \
         p AS (SELECT DISTINCT {p_keys}__ts FROM pg_temp.larder_entities WHERE TRUE{point_keys_not_null}), \
         u AS (SELECT {u_keys}__ts, 0 AS __kind, __cr, __fid FROM f \
               UNION ALL SELECT {u_keys}__ts, 1, NULL::timestamptz, NULL::bigint FROM p), \
         g AS (SELECT {u_keys}__ts, __kind, __cr, __fid, count(__fid) OVER ({partition}{order} ROWS UNBOUNDED PRECEDING) AS __grp FROM u), \
         a AS (SELECT {u_keys}__ts, __kind, first_value(__fid) OVER (PARTITION BY {g_keys}__grp {order}) AS __win FROM g) \
         SELECT e.__row, v.__fid IS NOT NULL AS __hit{feature_list} FROM pg_temp.larder_entities e \
         LEFT JOIN a ON a.__kind = 1 AND a.__ts = e.__ts{key_join} \
         LEFT JOIN f v ON v.__fid = a.__win AND ($3 = 0 OR v.__ts >= e.__ts - $3 * interval '1 microsecond') \
         ORDER BY e.__row",
        f_select = f_select.join(", "),
        not_null = not_null.concat(),
        p_keys = with_keys(""),
        u_keys = with_keys(""),
        g_keys = with_keys(""),
    ))
}

fn micros_utc(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or(if us < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// The feature columns of `view` for every entity row, from its PostgreSQL source.
pub(crate) async fn retrieve(
    entities: &RecordBatch,
    timestamps_ns: &[i64],
    keys: &KeyColumns,
    view: &HistoricalView,
) -> Result<(Vec<ArrayRef>, ViewStats), OfflineError> {
    let src = &view.source;
    let SourceLocation::Postgres { url, .. } = &src.location else {
        return Err(OfflineError::InvalidSpec {
            source_name: src.name.clone(),
            message: "not a PostgreSQL source".into(),
        });
    };
    let loc = src.postgres_location();
    let pg_err = |message: String| OfflineError::Postgres {
        location: loc.clone(),
        message,
    };
    let invalid = |message: String| OfflineError::InvalidSpec {
        source_name: src.name.clone(),
        message,
    };
    let mut targets = Vec::with_capacity(view.features.len());
    let mut casts = Vec::with_capacity(view.features.len());
    let mut builders = Vec::with_capacity(view.features.len());
    for (name, t) in &view.features {
        let target = Target::from_feature_type(*t)
            .and_then(|tg| column_of(tg).map(|c| (tg, c)))
            .ok_or_else(|| {
                invalid(format!(
                    "feature {name:?} has type {t}, which Larder cannot read from PostgreSQL"
                ))
            })?;
        targets.push(target.0);
        casts.push(target.1.0);
        builders.push(target.1.1);
    }
    let sql = join_sql(view, &casts).map_err(invalid)?;

    let mut conn = connect(url, &loc).await?;
    // The entity rows this view needs: row number, time (µs), keys.
    let key_types: Vec<&str> = view
        .join_keys
        .iter()
        .map(|k| match k.value_type {
            larder_model::types::FeatureType::STRING => "text",
            larder_model::types::FeatureType::BYTES => "bytea",
            larder_model::types::FeatureType::UNIX_TIMESTAMP => "bigint",
            _ => "bigint",
        })
        .collect();
    let mut ddl =
        "CREATE TEMPORARY TABLE larder_entities (__row bigint NOT NULL, __ts timestamptz NOT NULL".to_string();
    for (i, t) in key_types.iter().enumerate() {
        ddl.push_str(&format!(", __k{i} {t}"));
    }
    ddl.push_str(") ON COMMIT PRESERVE ROWS");
    conn.execute(AssertSqlSafe(ddl))
        .await
        .map_err(|e| pg_err(e.to_string()))?;
    let mut copy = conn
        .copy_in_raw("COPY pg_temp.larder_entities FROM STDIN")
        .await
        .map_err(|e| pg_err(e.to_string()))?;
    let mut chunk = String::with_capacity(1 << 20);
    let (mut min_us, mut max_us) = (i64::MAX, i64::MIN);
    let mut keyed = String::new();
    for (row, ns) in timestamps_ns.iter().enumerate() {
        keyed.clear();
        if !view.join_keys.is_empty() && !keys.copy_text(row, &mut keyed) {
            // A null join key matches nothing: the row is left out, its features stay null.
            continue;
        }
        let us = ns.div_euclid(1_000);
        min_us = min_us.min(us);
        max_us = max_us.max(us);
        chunk.push_str(&format!("{row}\t{}", micros_utc(us).format("%Y-%m-%d %H:%M:%S%.6f+00")));
        chunk.push_str(&keyed);
        chunk.push('\n');
        if chunk.len() >= 1 << 20 {
            copy.send(std::mem::take(&mut chunk).into_bytes())
                .await
                .map_err(|e| pg_err(e.to_string()))?;
        }
    }
    if !chunk.is_empty() {
        copy.send(chunk.into_bytes()).await.map_err(|e| pg_err(e.to_string()))?;
    }
    copy.finish().await.map_err(|e| pg_err(e.to_string()))?;
    conn.execute(AssertSqlSafe("ANALYZE pg_temp.larder_entities".to_string()))
        .await
        .map_err(|e| pg_err(e.to_string()))?;

    let rows = entities.num_rows();
    let mut out_rows = vec![false; rows];
    let mut stats = ViewStats {
        view: view.name.clone(),
        ..Default::default()
    };
    if min_us <= max_us {
        let ttl_us = view.ttl_ns.max(0) / 1_000;
        // Without a ttl, every older row counts: from year 1 (PostgreSQL's range starts in 4713 BC).
        const YEAR_1_US: i64 = -62_135_596_800_000_000;
        let oldest = if ttl_us > 0 {
            min_us.saturating_sub(ttl_us).max(YEAR_1_US)
        } else {
            YEAR_1_US
        };
        let mut stream = sqlx::query(AssertSqlSafe(sql))
            .bind(micros_utc(oldest))
            .bind(micros_utc(max_us))
            .bind(ttl_us)
            .fetch(&mut conn);
        let mut done = 0usize;
        let mut next_row = 0usize;
        while let Some(r) = stream.try_next().await.map_err(|e| pg_err(e.to_string()))? {
            let row = usize::try_from(r.try_get::<i64, _>(0).map_err(|e| pg_err(e.to_string()))?)
                .map_err(|e| pg_err(e.to_string()))?;
            // Rows left out of the table (null keys) get nulls, in order.
            while next_row < row {
                for b in &mut builders {
                    append_null(b);
                }
                next_row += 1;
            }
            let matched: bool = r.try_get(1).map_err(|e| pg_err(e.to_string()))?;
            for (i, (t, b)) in targets.iter().zip(&mut builders).enumerate() {
                append(&r, i + 2, *t, b).map_err(|m| OfflineError::BadValue {
                    column: view.features[i].0.clone(),
                    location: loc.clone(),
                    row: row as u64,
                    message: m,
                })?;
            }
            if let Some(slot) = out_rows.get_mut(row) {
                *slot = matched;
            }
            next_row = row + 1;
            done += 1;
        }
        stats.rows_scanned = done as u64;
    }
    for _ in builders.first().map_or(rows, |b| b.len())..rows {
        for b in &mut builders {
            append_null(b);
        }
    }
    stats.rows_matched = out_rows.iter().filter(|m| **m).count() as u64;
    let _ = conn.close().await;
    Ok((builders.iter_mut().map(|b| b.finish()).collect::<Vec<_>>(), stats))
}

fn append_null(b: &mut Box<dyn ArrayBuilder>) {
    macro_rules! try_null {
        ($($t:ty),*) => {
            $(if let Some(x) = b.as_any_mut().downcast_mut::<$t>() {
                x.append_null();
                return;
            })*
        };
    }
    try_null!(
        Int64Builder,
        Int32Builder,
        Float32Builder,
        Float64Builder,
        BooleanBuilder,
        BinaryBuilder,
        TimestampMicrosecondBuilder,
        StringBuilder,
        ListBuilder<Int64Builder>,
        ListBuilder<Int32Builder>,
        ListBuilder<Float32Builder>,
        ListBuilder<Float64Builder>,
        ListBuilder<BooleanBuilder>,
        ListBuilder<StringBuilder>,
        ListBuilder<BinaryBuilder>
    );
}

/// Run [`retrieve`] from blocking code: on the current Tokio runtime when
/// called from one of its blocking threads, else on a runtime of its own.
pub(crate) fn retrieve_blocking(
    entities: &RecordBatch,
    timestamps_ns: &[i64],
    keys: &KeyColumns,
    view: &HistoricalView,
) -> Result<(Vec<ArrayRef>, ViewStats), OfflineError> {
    let fut = retrieve(entities, timestamps_ns, keys, view);
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| handle.block_on(fut))
        }
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| OfflineError::ReaderFailed {
                source_name: view.source.name.clone(),
                message: format!("cannot start a runtime: {e}"),
            })?
            .block_on(fut),
    }
}
