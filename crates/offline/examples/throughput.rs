//! Hand-run throughput check of `read_latest` on a Parquet source (not a
//! timed test):
//!
//! ```sh
//! CARGO_TARGET_DIR=$HOME/.cache/larder-target \
//!   cargo run --release -p larder-offline --example throughput -- [ROWS] [KEYS]
//! ```
//!
//! Writes ROWS rows (default 1,000,000) over KEYS entities (default ROWS) ×
//! 10 features (3 Float32, 2 Float64, 2 Int64, 1 Int32, 1 String, 1 Bool)
//! to a temporary Parquet file (snappy, 1 Mi-row row groups, as pyarrow
//! writes), then reads it in a fresh child process and reports rows/s, CPU
//! time and peak RSS of the read alone. A third argument sets
//! `dedup_capacity`; `--read PATH [CAPACITY]` reads an existing file.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use larder_model::types::FeatureType;
use larder_offline::{ReadSpec, SourceLocation, SourceSpec, read_latest};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

const BASE_US: i64 = 1_704_067_200_000_000;

fn features() -> Vec<(&'static str, &'static str, DataType)> {
    vec![
        ("f_float_0", "Float32", DataType::Float32),
        ("f_float_1", "Float32", DataType::Float32),
        ("f_float_2", "Float32", DataType::Float32),
        ("f_double_0", "Float64", DataType::Float64),
        ("f_double_1", "Float64", DataType::Float64),
        ("f_long_0", "Int64", DataType::Int64),
        ("f_long_1", "Int64", DataType::Int64),
        ("f_int_0", "Int32", DataType::Int32),
        ("f_city", "String", DataType::Utf8),
        ("f_flag", "Bool", DataType::Boolean),
    ]
}

fn generate(path: &Path, rows: usize, keys: usize) -> Result<(), Box<dyn std::error::Error>> {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let mut fields = vec![
        Field::new("entity_id", DataType::Int64, false),
        Field::new("event_timestamp", ts.clone(), false),
        Field::new("created", ts, true),
    ];
    for (n, _, dt) in features() {
        fields.push(Field::new(n, dt, true));
    }
    let schema = Arc::new(Schema::new(fields));
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let mut w = ArrowWriter::try_new(File::create(path)?, schema.clone(), Some(props))?;
    let cities = ["Amsterdam", "Berlin", "Lisbon", "Madrid", "Paris", "Warsaw"];
    let chunk = 65_536;
    let mut start = 0;
    while start < rows {
        let n = chunk.min(rows - start);
        let idx: Vec<usize> = (start..start + n).collect();
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(idx.iter().map(|i| (i % keys) as i64))),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    idx.iter().map(|i| BASE_US + (i / keys) as i64 * 1_000_000),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(idx.iter().map(|i| BASE_US + *i as i64))
                    .with_timezone("UTC"),
            ),
            Arc::new(Float32Array::from_iter_values(
                idx.iter().map(|i| (i % 1000) as f32 / 1000.0),
            )),
            Arc::new(Float32Array::from_iter_values(idx.iter().map(|i| (i % 997) as f32))),
            Arc::new(Float32Array::from(
                idx.iter()
                    .map(|i| (i % 50 != 0).then_some(*i as f32))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Float64Array::from_iter_values(idx.iter().map(|i| *i as f64 * 0.25))),
            Arc::new(Float64Array::from(
                idx.iter()
                    .map(|i| (i % 100 != 0).then_some(*i as f64))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from_iter_values(idx.iter().map(|i| *i as i64 * 3))),
            Arc::new(Int64Array::from_iter_values(idx.iter().map(|i| (i % 20_000) as i64))),
            Arc::new(Int32Array::from_iter_values(idx.iter().map(|i| (i % 721) as i32))),
            Arc::new(StringArray::from_iter_values(
                idx.iter().map(|i| cities[i % cities.len()]),
            )),
            Arc::new(BooleanArray::from(idx.iter().map(|i| i % 5 == 0).collect::<Vec<_>>())),
        ];
        w.write(&RecordBatch::try_new(schema.clone(), cols)?)?;
        start += n;
    }
    w.close()?;
    Ok(())
}

fn proc_status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .map(|l| l[field.len()..].trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

fn cpu_seconds() -> f64 {
    // utime + stime of this process, in clock ticks (100 Hz on Linux).
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0)
        })
        .unwrap_or(f64::NAN)
}

fn read(path: &Path, dedup_capacity: usize) -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let source = SourceSpec {
        name: "bench".into(),
        location: SourceLocation::Parquet(path.to_path_buf()),
        timestamp_field: "event_timestamp".into(),
        created_timestamp_column: Some("created".into()),
        field_mapping: Default::default(),
    };
    let mut spec = ReadSpec::new(
        vec![("entity_id".into(), FeatureType::INT64)],
        features()
            .into_iter()
            .map(|(n, t, _)| (n.to_string(), FeatureType::parse(t).unwrap_or(FeatureType::STRING)))
            .collect(),
        i64::MIN,
        i64::MAX,
    );
    spec.dedup_capacity = dedup_capacity;
    let input_rows = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?
        .metadata()
        .file_metadata()
        .num_rows();
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let (rows, batches) = rt.block_on(async {
        let mut rx = read_latest(source, spec);
        let (mut rows, mut batches) = (0usize, 0usize);
        while let Some(b) = rx.recv().await {
            rows += b?.rows.len();
            batches += 1;
        }
        Ok::<_, larder_offline::OfflineError>((rows, batches))
    })?;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    println!(
        "read_latest: {input_rows} rows in, {rows} rows out in {batches} batches; {secs:.3} s wall, {cpu:.2} s CPU \
         → {:.0} input rows/s (wall), {:.0} input rows/CPU-s; peak RSS {}",
        input_rows as f64 / secs,
        input_rows as f64 / cpu,
        proc_status("VmHWM:")
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--read") {
        let path = args.get(2).ok_or("--read PATH [DEDUP_CAPACITY]")?;
        let cap = args
            .get(3)
            .and_then(|s| s.parse().ok())
            .unwrap_or(ReadSpec::DEFAULT_DEDUP_CAPACITY);
        return read(Path::new(path), cap);
    }
    let rows: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let keys: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(rows).max(1);
    let cap = args
        .get(3)
        .cloned()
        .unwrap_or_else(|| ReadSpec::DEFAULT_DEDUP_CAPACITY.to_string());
    let dir = tempfile::tempdir()?;
    // LARDER_BENCH_FILE=path keeps the generated file (for `--read path` under a profiler).
    let path = std::env::var_os("LARDER_BENCH_FILE").map_or_else(|| dir.path().join("bench.parquet"), Into::into);
    let t0 = Instant::now();
    generate(&path, rows, keys)?;
    println!(
        "wrote {rows} rows × {} features over {keys} keys in {:.1} s ({} MiB)",
        features().len(),
        t0.elapsed().as_secs_f64(),
        std::fs::metadata(&path)?.len() >> 20
    );
    let status = std::process::Command::new(std::env::current_exe()?)
        .arg("--read")
        .arg(&path)
        .arg(&cap)
        .status()?;
    if !status.success() {
        return Err(format!("reader exited with {status}").into());
    }
    Ok(())
}
