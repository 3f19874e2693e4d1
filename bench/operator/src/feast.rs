//! Runs `feast_operator_bench.py` (Feast 0.67's `FeatureStore.apply` of the
//! same objects into its own fresh PostgreSQL SQL registry) and reads its
//! one-line JSON result.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

pub fn script_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("feast_operator_bench.py")
}

/// `$HOME/.cache/larder/feast-0.67.0/bin/python` (or `$LARDER_FEAST_PYTHON`).
pub fn default_python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LARDER_FEAST_PYTHON") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/larder/feast-0.67.0/bin/python"))
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FeastReport {
    pub feast_version: String,
    pub views: usize,
    pub import_s: f64,
    pub build_s: f64,
    pub init_s: f64,
    pub apply_s: f64,
    pub apply_cpu_s: f64,
    pub reapply_s: f64,
    pub reapply_cpu_s: f64,
    pub registry_rows: BTreeMap<String, i64>,
    pub rows_total: usize,
    pub reapply_rows_rewritten: usize,
    pub reapply_rows_new: usize,
    pub online_tables: Option<i64>,
    pub peak_rss_bytes: u64,
}

pub struct FeastRun<'a> {
    pub python: &'a Path,
    pub views: usize,
    pub registry_url: &'a str,
    pub dir: &'a Path,
    pub data_dir: &'a Path,
    /// `None` = SQLite in `dir`; `Some(conn)` = Redis.
    pub redis: Option<&'a str>,
    pub timeout: Duration,
}

pub async fn run(r: &FeastRun<'_>) -> Result<FeastReport> {
    let script = script_path();
    if !script.exists() {
        bail!("{} is missing", script.display());
    }
    let mut cmd = tokio::process::Command::new(r.python);
    cmd.arg(&script)
        .arg("--views")
        .arg(r.views.to_string())
        .arg("--registry")
        .arg(r.registry_url)
        .arg("--dir")
        .arg(r.dir)
        .arg("--data-dir")
        .arg(r.data_dir);
    match r.redis {
        Some(conn) => cmd.arg("--online").arg("redis").arg("--redis").arg(conn),
        None => cmd.arg("--online").arg("sqlite"),
    };
    larder_testkit::feast::run_script(cmd, Some(r.timeout))
        .await
        .with_context(|| format!("{} {}", r.python.display(), script.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(stdout: &str) -> Result<FeastReport, larder_testkit::feast::ScriptError> {
        larder_testkit::feast::last_json_line(stdout)
    }

    #[test]
    fn parses_the_scripts_json() {
        let out = "noise\n{\"feast_version\": \"0.67.0\", \"views\": 20, \"import_s\": 26.4, \"build_s\": 0.05, \"init_s\": 1.7, \"apply_s\": 10.6, \"apply_cpu_s\": 1.5, \"reapply_s\": 1.2, \"reapply_cpu_s\": 0.27, \"registry_rows\": {\"projects\": 1, \"entities\": 21}, \"rows_total\": 84, \"reapply_rows_rewritten\": 0, \"reapply_rows_new\": 0, \"online_tables\": 20, \"peak_rss_bytes\": 220385280}\n";
        let r = parse(out).unwrap();
        assert_eq!(r.views, 20);
        assert_eq!(r.registry_rows["entities"], 21);
        assert_eq!(r.online_tables, Some(20));
    }

    #[test]
    fn missing_json_is_an_error() {
        assert!(parse("Traceback ...\n").is_err());
    }
}
