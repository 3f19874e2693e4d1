//! PostgreSQL sources: `DISTINCT ON` in the database, rows streamed.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use futures_util::TryStreamExt;
use larder_model::rows::{EntityRow, RowBatch};
use larder_protos::feast::types::Value;
use larder_protos::feast::types::value::Val;
use sqlx::postgres::{PgConnectOptions, PgRow};
use sqlx::{AssertSqlSafe, Column, Connection, Executor, Row, SqlSafeStr, Statement, TypeInfo};
use tokio::sync::mpsc;

use crate::spec::{DUMMY_ENTITY_ID, Plan};
use crate::target::{self, Scalar, Target};
use crate::{OfflineError, ReadSpec, ReadStats, SourceLocation, SourceSpec};

/// Double-quote an identifier; names with `"` or NUL are refused.
pub(crate) fn quote_ident(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("empty identifier".into());
    }
    if name.contains('"') || name.contains('\0') {
        return Err(format!("identifier {name:?} contains a double quote or NUL"));
    }
    Ok(format!("\"{name}\""))
}

/// A column type this reader decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    I2,
    I4,
    I8,
    F4,
    F8,
    Text,
    Bytea,
    Tstz,
    Ts,
    Date,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PgType {
    Scalar(Kind),
    Array(Kind),
}

fn kind_of(name: &str) -> Option<Kind> {
    Some(match name {
        "BOOL" => Kind::Bool,
        "INT2" => Kind::I2,
        "INT4" => Kind::I4,
        "INT8" => Kind::I8,
        "FLOAT4" => Kind::F4,
        "FLOAT8" => Kind::F8,
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => Kind::Text,
        "BYTEA" => Kind::Bytea,
        "TIMESTAMPTZ" => Kind::Tstz,
        "TIMESTAMP" => Kind::Ts,
        "DATE" => Kind::Date,
        _ => return None,
    })
}

fn pg_type(name: &str) -> Option<PgType> {
    match name.strip_suffix("[]") {
        Some(elem) => kind_of(elem).map(PgType::Array),
        None => kind_of(name).map(PgType::Scalar),
    }
}

fn scalar_ok(s: Scalar, k: Kind) -> bool {
    use Kind::*;
    match s {
        Scalar::Float | Scalar::Double => matches!(k, F4 | F8),
        Scalar::Int32 | Scalar::Int64 => matches!(k, I2 | I4 | I8),
        Scalar::Bool => k == Bool,
        Scalar::String | Scalar::Json | Scalar::Uuid | Scalar::TimeUuid | Scalar::Decimal => k == Text,
        Scalar::Bytes => k == Bytea,
        Scalar::UnixTimestamp => matches!(k, Tstz | Ts | Date | I8 | I4),
    }
}

fn compatible(t: Target, p: PgType) -> bool {
    match (t, p) {
        (Target::Scalar(s), PgType::Scalar(k)) => scalar_ok(s, k),
        (Target::List(s), PgType::Array(k)) => scalar_ok(s, k),
        _ => false,
    }
}

/// One decoded cell.
enum Cell {
    Null,
    Int(i64),
    F4(f32),
    F8(f64),
    Bool(bool),
    Text(String),
    Bytes(Vec<u8>),
    /// Seconds since the epoch and nanoseconds within the second.
    Time(i64, u32),
    List(Vec<Cell>),
}

impl Cell {
    fn ns(&self) -> Option<i64> {
        match self {
            Cell::Time(s, n) => s.checked_mul(1_000_000_000)?.checked_add(i64::from(*n)),
            _ => None,
        }
    }
}

fn get<'r, T>(row: &'r PgRow, i: usize) -> Result<Option<T>, String>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get::<Option<T>, _>(i).map_err(|e| e.to_string())
}

fn get_list<T>(row: &PgRow, i: usize, wrap: fn(T) -> Cell) -> Result<Cell, String>
where
    T: for<'a> sqlx::Decode<'a, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + sqlx::postgres::PgHasArrayType,
{
    let Some(items) = get::<Vec<Option<T>>>(row, i)? else {
        return Ok(Cell::Null);
    };
    let mut out = Vec::with_capacity(items.len());
    for (n, item) in items.into_iter().enumerate() {
        match item {
            Some(v) => out.push(wrap(v)),
            None => return Err(format!("array element {n} is null; Feast lists cannot hold nulls")),
        }
    }
    Ok(Cell::List(out))
}

fn tstz(v: DateTime<Utc>) -> Cell {
    Cell::Time(v.timestamp(), v.timestamp_subsec_nanos())
}
fn ts(v: NaiveDateTime) -> Cell {
    tstz(v.and_utc())
}
fn date(v: NaiveDate) -> Cell {
    let days = v.signed_duration_since(NaiveDate::default()).num_days();
    Cell::Time(days * 86_400, 0)
}

fn cell(row: &PgRow, i: usize, t: PgType) -> Result<Cell, String> {
    fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Cell) -> Cell {
        v.map_or(Cell::Null, f)
    }
    Ok(match t {
        PgType::Scalar(k) => match k {
            Kind::Bool => opt(get::<bool>(row, i)?, Cell::Bool),
            Kind::I2 => opt(get::<i16>(row, i)?, |v| Cell::Int(v.into())),
            Kind::I4 => opt(get::<i32>(row, i)?, |v| Cell::Int(v.into())),
            Kind::I8 => opt(get::<i64>(row, i)?, Cell::Int),
            Kind::F4 => opt(get::<f32>(row, i)?, Cell::F4),
            Kind::F8 => opt(get::<f64>(row, i)?, Cell::F8),
            Kind::Text => opt(get::<String>(row, i)?, Cell::Text),
            Kind::Bytea => opt(get::<Vec<u8>>(row, i)?, Cell::Bytes),
            Kind::Tstz => opt(get::<DateTime<Utc>>(row, i)?, tstz),
            Kind::Ts => opt(get::<NaiveDateTime>(row, i)?, ts),
            Kind::Date => opt(get::<NaiveDate>(row, i)?, date),
        },
        PgType::Array(k) => match k {
            Kind::Bool => get_list::<bool>(row, i, Cell::Bool)?,
            Kind::I2 => get_list::<i16>(row, i, |v| Cell::Int(v.into()))?,
            Kind::I4 => get_list::<i32>(row, i, |v| Cell::Int(v.into()))?,
            Kind::I8 => get_list::<i64>(row, i, Cell::Int)?,
            Kind::F4 => get_list::<f32>(row, i, Cell::F4)?,
            Kind::F8 => get_list::<f64>(row, i, Cell::F8)?,
            Kind::Text => get_list::<String>(row, i, Cell::Text)?,
            Kind::Bytea => get_list::<Vec<u8>>(row, i, Cell::Bytes)?,
            Kind::Tstz => get_list::<DateTime<Utc>>(row, i, tstz)?,
            Kind::Ts => get_list::<NaiveDateTime>(row, i, ts)?,
            Kind::Date => get_list::<NaiveDate>(row, i, date)?,
        },
    })
}

const INTERNAL: &str = "internal error: value does not match its checked type";

fn as_f32(c: &Cell) -> Result<f32, String> {
    match c {
        Cell::F4(v) => Ok(*v),
        Cell::F8(v) => Ok(*v as f32),
        _ => Err(INTERNAL.into()),
    }
}
fn as_f64(c: &Cell) -> Result<f64, String> {
    match c {
        Cell::F8(v) => Ok(*v),
        Cell::F4(v) => Ok(f64::from(*v)),
        _ => Err(INTERNAL.into()),
    }
}
fn as_i64(c: &Cell) -> Result<i64, String> {
    match c {
        Cell::Int(v) => Ok(*v),
        _ => Err(INTERNAL.into()),
    }
}
fn as_i32(c: &Cell) -> Result<i32, String> {
    let v = as_i64(c)?;
    i32::try_from(v).map_err(|_| format!("value {v} does not fit in Int32"))
}
fn as_bool(c: &Cell) -> Result<bool, String> {
    match c {
        Cell::Bool(v) => Ok(*v),
        _ => Err(INTERNAL.into()),
    }
}
fn as_secs(c: &Cell) -> Result<i64, String> {
    match c {
        Cell::Time(s, _) => Ok(*s),
        Cell::Int(v) => Ok(*v),
        _ => Err(INTERNAL.into()),
    }
}
fn into_text(c: Cell) -> Result<String, String> {
    match c {
        Cell::Text(s) => Ok(s),
        _ => Err(INTERNAL.into()),
    }
}
fn into_bytes(c: Cell) -> Result<Vec<u8>, String> {
    match c {
        Cell::Bytes(b) => Ok(b),
        _ => Err(INTERNAL.into()),
    }
}

fn to_value(c: Cell, t: Target) -> Result<Value, String> {
    let val = match (t, c) {
        (_, Cell::Null) => return Ok(Value::default()),
        (Target::Scalar(s), c) => match s {
            Scalar::Float => Val::FloatVal(as_f32(&c)?),
            Scalar::Double => Val::DoubleVal(as_f64(&c)?),
            Scalar::Int32 => Val::Int32Val(as_i32(&c)?),
            Scalar::Int64 => Val::Int64Val(as_i64(&c)?),
            Scalar::Bool => Val::BoolVal(as_bool(&c)?),
            Scalar::UnixTimestamp => Val::UnixTimestampVal(as_secs(&c)?),
            Scalar::Bytes => Val::BytesVal(into_bytes(c)?),
            Scalar::String | Scalar::Json | Scalar::Uuid | Scalar::TimeUuid | Scalar::Decimal => {
                target::text_val(s, into_text(c)?)
            }
        },
        (Target::List(s), Cell::List(items)) => match s {
            Scalar::Float => target::float_list_val(items.iter().map(as_f32).collect::<Result<_, _>>()?),
            Scalar::Double => target::double_list_val(items.iter().map(as_f64).collect::<Result<_, _>>()?),
            Scalar::Int32 => target::int32_list_val(items.iter().map(as_i32).collect::<Result<_, _>>()?),
            Scalar::Int64 => target::int64_list_val(s, items.iter().map(as_i64).collect::<Result<_, _>>()?),
            Scalar::UnixTimestamp => target::int64_list_val(s, items.iter().map(as_secs).collect::<Result<_, _>>()?),
            Scalar::Bool => target::bool_list_val(items.iter().map(as_bool).collect::<Result<_, _>>()?),
            Scalar::Bytes => target::bytes_list_val(items.into_iter().map(into_bytes).collect::<Result<_, _>>()?),
            Scalar::String | Scalar::Json | Scalar::Uuid | Scalar::TimeUuid | Scalar::Decimal => {
                target::text_list_val(s, items.into_iter().map(into_text).collect::<Result<_, _>>()?)
            }
        },
        (Target::List(_), _) => return Err(INTERNAL.into()),
    };
    Ok(Value { val: Some(val) })
}

fn put_key(out: &mut Vec<u8>, c: &Cell, s: Scalar) -> Result<(), String> {
    match (s, c) {
        (Scalar::Int64, c) => target::put_key_value(out, 4, &as_i64(c)?.to_le_bytes()),
        (Scalar::Int32, c) => target::put_key_value(out, 3, &as_i32(c)?.to_le_bytes()),
        (Scalar::UnixTimestamp, c) => target::put_key_value(out, 8, &as_secs(c)?.to_le_bytes()),
        (Scalar::String, Cell::Text(t)) => target::put_key_value(out, 2, t.as_bytes()),
        (Scalar::Bytes, Cell::Bytes(b)) => target::put_key_value(out, 1, b),
        _ => return Err(INTERNAL.into()),
    }
    Ok(())
}

/// The query: one row per key, the latest in `[$1, $2)`.
pub(crate) struct Query {
    pub sql: String,
    /// Result column names (source columns), in select order.
    pub columns: Vec<String>,
    /// Index of the first feature column, the timestamp and created columns.
    pub first_feature: usize,
    pub ts: usize,
    pub created: Option<usize>,
    /// For each plan key, its result column (`None` = constant `""`).
    pub key_cols: Vec<Option<usize>>,
}

/// The `FROM` item of a source: its quoted table, or its query as a
/// subquery named `larder_src`.
pub(crate) fn from_clause(source: &SourceSpec) -> Result<String, String> {
    let SourceLocation::Postgres { table, query, .. } = &source.location else {
        return Err("not a PostgreSQL source".into());
    };
    match (table, query) {
        (Some(t), _) => Ok(t.split('.').map(quote_ident).collect::<Result<Vec<_>, _>>()?.join(".")),
        (None, Some(q)) => {
            let q = q.trim().trim_end_matches(';');
            Ok(format!("({q}) AS \"larder_src\""))
        }
        (None, None) => Err("PostgreSQL source has neither a table nor a query".into()),
    }
}

pub(crate) fn build_query(source: &SourceSpec, plan: &Plan) -> Result<Query, String> {
    let from = from_clause(source)?;
    let mut select = Vec::new();
    let mut columns = Vec::new();
    let mut key_cols = Vec::new();
    let mut key_exprs = Vec::new();
    for k in &plan.keys {
        match &k.column {
            Some(c) if k.name != DUMMY_ENTITY_ID => {
                let q = quote_ident(c)?;
                key_cols.push(Some(select.len()));
                key_exprs.push(q.clone());
                select.push(q);
                columns.push(c.clone());
            }
            _ => key_cols.push(None),
        }
    }
    let first_feature = select.len();
    for f in &plan.features {
        let q = quote_ident(&f.column)?;
        // Json/Uuid/Decimal values are read as their text form.
        let expr = match f.target {
            Target::Scalar(s) if s.is_text() && s != Scalar::String => format!("{q}::text"),
            Target::List(s) if s.is_text() && s != Scalar::String => format!("{q}::text[]"),
            _ => q,
        };
        select.push(expr);
        columns.push(f.column.clone());
    }
    let ts_q = quote_ident(&plan.ts_col)?;
    let ts = select.len();
    select.push(ts_q.clone());
    columns.push(plan.ts_col.clone());
    let (created, created_q) = match &plan.created_col {
        Some(c) => {
            let q = quote_ident(c)?;
            select.push(q.clone());
            columns.push(c.clone());
            (Some(ts + 1), Some(q))
        }
        None => (None, None),
    };
    let mut order = key_exprs.clone();
    order.push(format!("{ts_q} DESC"));
    if let Some(q) = &created_q {
        order.push(format!("{q} DESC NULLS LAST"));
    }
    let sql = if key_exprs.is_empty() {
        format!(
            "SELECT {} FROM {from} WHERE {ts_q} >= $1 AND {ts_q} < $2 ORDER BY {} LIMIT 1",
            select.join(", "),
            order.join(", ")
        )
    } else {
        format!(
            "SELECT DISTINCT ON ({}) {} FROM {from} WHERE {ts_q} >= $1 AND {ts_q} < $2 ORDER BY {}",
            key_exprs.join(", "),
            select.join(", "),
            order.join(", ")
        )
    };
    Ok(Query {
        sql,
        columns,
        first_feature,
        ts,
        created,
        key_cols,
    })
}

/// Window bounds as timestamps PostgreSQL (microsecond resolution) compares
/// exactly: a stored time t satisfies `t >= start_ns` iff `t >= ceil_us(start_ns)`,
/// and likewise for the end.
fn bound(ns: i64) -> DateTime<Utc> {
    let us = ns.div_euclid(1_000) + i64::from(ns.rem_euclid(1_000) != 0);
    DateTime::from_timestamp_micros(us).unwrap_or(if us < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

pub(crate) async fn read_postgres(
    source: &SourceSpec,
    spec: &ReadSpec,
    tx: &mpsc::Sender<Result<RowBatch, OfflineError>>,
) -> Result<ReadStats, OfflineError> {
    let SourceLocation::Postgres { url, .. } = &source.location else {
        return Err(OfflineError::InvalidSpec {
            source_name: source.name.clone(),
            message: "not a PostgreSQL source".into(),
        });
    };
    let plan = Plan::new(source, spec)?;
    let loc = source.postgres_location();
    let pg_err = |message: String| OfflineError::Postgres {
        location: loc.clone(),
        message,
    };
    let q = build_query(source, &plan).map_err(|message| OfflineError::InvalidSpec {
        source_name: source.name.clone(),
        message,
    })?;

    let mut conn = connect(url, &loc).await?;

    // Prepare first: checks the table, the columns and their types before
    // any row is read.
    let stmt = (&mut conn)
        .prepare(AssertSqlSafe(q.sql.clone()).into_sql_str())
        .await
        .map_err(|e| pg_err(e.to_string()))?;
    let mut types = Vec::with_capacity(q.columns.len());
    for (i, col) in stmt.columns().iter().enumerate() {
        let name = q.columns.get(i).cloned().unwrap_or_else(|| col.name().to_string());
        let ty = col.type_info().name().to_string();
        let (ok, expected): (Option<PgType>, String) = if i == q.ts || Some(i) == q.created {
            let t = pg_type(&ty).filter(|t| matches!(t, PgType::Scalar(Kind::Tstz | Kind::Ts | Kind::Date)));
            (t, "a timestamp (TIMESTAMPTZ, TIMESTAMP or DATE)".into())
        } else if i < q.first_feature {
            let k = plan
                .keys
                .iter()
                .zip(&q.key_cols)
                .find(|(_, c)| **c == Some(i))
                .map(|(k, _)| k);
            match k {
                Some(k) => (
                    pg_type(&ty).filter(|t| compatible(Target::Scalar(k.scalar), *t)),
                    format!("join key type {}", k.declared),
                ),
                None => (None, "a join key".into()),
            }
        } else {
            match plan.features.get(i - q.first_feature) {
                Some(f) => (
                    pg_type(&ty).filter(|t| compatible(f.target, *t)),
                    format!("feature type {}", f.declared),
                ),
                None => (None, "a known column".into()),
            }
        };
        match ok {
            Some(t) => types.push(t),
            None => {
                return Err(OfflineError::WrongType {
                    column: name,
                    location: loc.clone(),
                    actual: ty,
                    expected,
                });
            }
        }
    }
    drop(stmt);

    let mut stats = ReadStats::default();
    let mut rows: Vec<EntityRow> = Vec::with_capacity(spec.batch_rows.min(65_536));
    let mut stream = sqlx::query(AssertSqlSafe(q.sql.clone()))
        .bind(bound(spec.start_ns))
        .bind(bound(spec.end_ns))
        .fetch(&mut conn);
    let mut row_no = 0u64;
    'rows: while let Some(row) = stream.try_next().await.map_err(|e| pg_err(e.to_string()))? {
        row_no += 1;
        stats.rows_read += 1;
        let bad = |i: usize, message: String| OfflineError::BadValue {
            column: q.columns.get(i).cloned().unwrap_or_default(),
            location: loc.clone(),
            row: row_no,
            message,
        };
        let get_cell = |i: usize| -> Result<Cell, OfflineError> {
            let t = types
                .get(i)
                .copied()
                .ok_or_else(|| bad(i, "internal error: column out of range".into()))?;
            cell(&row, i, t).map_err(|m| bad(i, m))
        };
        let mut key = plan.key_prefix.clone();
        for (k, c) in plan.keys.iter().zip(&q.key_cols) {
            match c {
                Some(i) => {
                    let v = get_cell(*i)?;
                    if matches!(v, Cell::Null) {
                        stats.null_key_rows += 1;
                        continue 'rows;
                    }
                    put_key(&mut key, &v, k.scalar).map_err(|m| bad(*i, m))?;
                }
                None => target::put_key_value(&mut key, 2, b""),
            }
        }
        let event_ts = get_cell(q.ts)?
            .ns()
            .ok_or_else(|| bad(q.ts, "event timestamp is null or outside 1677..2262".into()))?;
        let created_ts = match q.created {
            Some(i) => get_cell(i)?.ns(),
            None => None,
        };
        let mut values = Vec::with_capacity(plan.features.len());
        for (n, f) in plan.features.iter().enumerate() {
            let i = q.first_feature + n;
            values.push(to_value(get_cell(i)?, f.target).map_err(|m| bad(i, m))?);
        }
        stats.rows_in_window += 1;
        rows.push(EntityRow {
            entity_key: key,
            event_ts,
            created_ts,
            values,
        });
        if rows.len() >= spec.batch_rows {
            let batch = RowBatch {
                features: plan.feature_names.clone(),
                rows: std::mem::take(&mut rows),
            };
            stats.rows_emitted += batch.rows.len() as u64;
            stats.batches_emitted += 1;
            if tx.send(Ok(batch)).await.is_err() {
                stats.cancelled = true;
                return Ok(stats);
            }
        }
    }
    drop(stream);
    if !rows.is_empty() {
        let batch = RowBatch {
            features: plan.feature_names.clone(),
            rows,
        };
        stats.rows_emitted += batch.rows.len() as u64;
        stats.batches_emitted += 1;
        if tx.send(Ok(batch)).await.is_err() {
            stats.cancelled = true;
        }
    }
    let _ = conn.close().await;
    if stats.null_key_rows > 0 {
        tracing::warn!(source = %source.name, rows = stats.null_key_rows, "skipped rows whose join key is null");
    }
    tracing::info!(source = %source.name, rows_emitted = stats.rows_emitted, "offline read finished");
    Ok(stats)
}

/// A connection to a source's database (session time zone UTC); errors
/// name `location` and never print the URL's password.
pub(crate) async fn connect(url: &str, location: &str) -> Result<sqlx::PgConnection, OfflineError> {
    let pg_err = |message: String| OfflineError::Postgres {
        location: location.to_string(),
        message,
    };
    check_tls_files(url).map_err(pg_err)?;
    let opts = PgConnectOptions::from_str(url)
        .map_err(|e| pg_err(format!("invalid connection URL: {}", redact(&e.to_string(), url))))?
        .options([("TimeZone", "UTC")]);
    sqlx::PgConnection::connect_with(&opts).await.map_err(|e| {
        pg_err(format!(
            "cannot connect ({}): {}",
            tls_parameters(url),
            redact(&e.to_string(), url)
        ))
    })
}

/// The libpq TLS parameters sqlx reads from a URL's query (with sqlx's
/// aliases): `sslmode`, then the three certificate files.
const TLS_KEYS: [(&str, &[&str]); 4] = [
    ("sslmode", &["sslmode", "ssl-mode"]),
    ("sslrootcert", &["sslrootcert", "ssl-root-cert", "ssl-ca"]),
    ("sslcert", &["sslcert", "ssl-cert"]),
    ("sslkey", &["sslkey", "ssl-key"]),
];

/// `(canonical name, decoded value)` of each TLS parameter in the URL.
fn tls_query(url: &str) -> Result<Vec<(&'static str, String)>, String> {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    let mut out = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if let Some((name, _)) = TLS_KEYS.iter().find(|(_, keys)| keys.contains(&k)) {
            out.push((*name, decode(v)?));
        }
    }
    Ok(out)
}

/// The TLS settings of a connection, for its error messages (certificate
/// rejections are the usual cause of a failed connect with TLS on).
fn tls_parameters(url: &str) -> String {
    match tls_query(url) {
        Ok(p) if !p.is_empty() => p.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "),
        _ => "libpq's default sslmode".into(),
    }
}

/// Open the certificate files the URL names before connecting, so a
/// missing or unreadable one is named (sqlx only says "No such file or
/// directory"). Like libpq, nothing is read with `sslmode=disable` (or
/// `allow`, which sqlx treats as `disable`).
fn check_tls_files(url: &str) -> Result<(), String> {
    let params = tls_query(url)?;
    if params
        .iter()
        .any(|(k, v)| *k == "sslmode" && matches!(v.as_str(), "disable" | "allow"))
    {
        return Ok(());
    }
    let has = |name: &str| params.iter().any(|(k, _)| *k == name);
    if has("sslcert") != has("sslkey") {
        return Err("sslcert and sslkey must be set together (a client certificate needs its key)".into());
    }
    for (name, path) in params.iter().filter(|(k, _)| *k != "sslmode") {
        std::fs::File::open(path).map_err(|e| format!("{name} {path}: cannot read: {e}"))?;
    }
    Ok(())
}

/// Remove the URL (which may hold a password) from an error message.
fn redact(message: &str, url: &str) -> String {
    if url.is_empty() {
        message.to_string()
    } else {
        message.replace(url, "<url>")
    }
}

fn decode(s: &str) -> Result<String, String> {
    larder_model::url::percent_decode(s, true).map_err(|e| format!("a connection URL parameter {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The URL's certificate files are named when they cannot be read;
    /// with TLS off none is read, as libpq reads none.
    #[test]
    fn tls_files_are_checked_and_named() {
        let err =
            check_tls_files("postgres://u@h/d?sslmode=verify-ca&sslrootcert=%2Fnonexistent%2Fca.pem").unwrap_err();
        assert!(err.contains("sslrootcert /nonexistent/ca.pem: cannot read"), "{err}");
        let err = check_tls_files("postgres://u@h/d?ssl-cert=/c.pem").unwrap_err();
        assert!(err.contains("sslcert and sslkey must be set together"), "{err}");
        check_tls_files("postgres://u@h/d?sslmode=disable&sslrootcert=/nonexistent/ca.pem").unwrap();
        check_tls_files("postgres://u:p@h/d").unwrap();
        assert_eq!(
            tls_parameters("postgres://u:p@h/d?sslmode=require&application_name=x"),
            "sslmode=require"
        );
        assert_eq!(tls_parameters("postgres://u:p@h/d"), "libpq's default sslmode");
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a b").unwrap(), "\"a b\"");
        assert!(quote_ident("a\"b").is_err());
        assert!(quote_ident("").is_err());
    }

    #[test]
    fn bounds_round_up_to_microseconds() {
        assert_eq!(bound(1_000).timestamp_micros(), 1);
        assert_eq!(bound(1_001).timestamp_micros(), 2);
        assert_eq!(bound(-1).timestamp_micros(), 0);
        assert_eq!(bound(-1_001).timestamp_micros(), -1);
    }

    #[test]
    fn types() {
        assert_eq!(pg_type("INT8[]"), Some(PgType::Array(Kind::I8)));
        assert_eq!(pg_type("VARCHAR"), Some(PgType::Scalar(Kind::Text)));
        assert_eq!(pg_type("NUMERIC"), None);
        assert!(compatible(Target::Scalar(Scalar::Int32), PgType::Scalar(Kind::I8)));
        assert!(!compatible(Target::Scalar(Scalar::Int32), PgType::Scalar(Kind::F8)));
        assert!(compatible(Target::List(Scalar::Double), PgType::Array(Kind::F4)));
    }
}
