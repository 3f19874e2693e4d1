//! Runs `feast_operator_bench.py` (Feast 0.67's `FeatureStore.apply` of the
//! same objects into its own fresh PostgreSQL SQL registry) and reads its
//! one-line JSON result.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
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
    cmd.env("TZ", "UTC")
        .env("FEAST_USAGE", "False")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .with_context(|| format!("start {} {}", r.python.display(), script.display()))?;
    let out = tokio::time::timeout(r.timeout, child.wait_with_output())
        .await
        .map_err(|_| anyhow!("the Feast script did not finish within {} s", r.timeout.as_secs()))?
        .context("wait for the Feast script")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("the Feast script failed ({}); stdout:\n{stdout}", out.status);
    }
    parse(&stdout)
}

/// The last stdout line that is a JSON object.
pub fn parse(stdout: &str) -> Result<FeastReport> {
    let line = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('{'))
        .with_context(|| format!("no JSON line in the Feast script's output:\n{stdout}"))?;
    serde_json::from_str(line).with_context(|| format!("parse the Feast script's JSON: {line}"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
