//! Runs `feast_registry_bench.py` (Feast 0.67's own SQL registry) and reads
//! its one-line JSON result.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::report::Stats;

/// The script, next to this package's Cargo.toml.
pub fn script_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("feast_registry_bench.py")
}

/// The default Feast venv python: `$HOME/.cache/larder/feast-0.67.0/bin/python`.
pub fn default_python() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/larder/feast-0.67.0/bin/python"))
}

#[derive(Debug, Deserialize)]
pub struct FeastReport {
    pub feast_version: String,
    pub views: usize,
    pub backends: BTreeMap<String, FeastFigures>,
    #[serde(default)]
    pub skipped: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub struct FeastFigures {
    pub apply_s: f64,
    pub reapply_s: f64,
    pub reapply_changed: usize,
    pub refresh_ms: f64,
    pub list_uncached_us: Stats,
    pub list_cached_first_us: f64,
    pub list_cached_us: Stats,
}

/// What the script is asked to measure; each target must be a fresh database.
pub struct FeastTargets {
    /// SQLAlchemy URLs.
    pub postgres: Option<String>,
    pub mysql: Option<String>,
    /// Absolute path of a SQLite file that does not exist yet.
    pub sqlite: Option<PathBuf>,
}

pub struct FeastOptions {
    pub views: usize,
    pub uncached_iters: usize,
    pub cached_iters: usize,
    pub time_budget_s: f64,
    pub cache_ttl_s: u64,
}

pub async fn run(python: &Path, targets: &FeastTargets, opts: &FeastOptions) -> Result<FeastReport> {
    let script = script_path();
    if !script.exists() {
        bail!("{} is missing", script.display());
    }
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(&script)
        .arg("--views")
        .arg(opts.views.to_string())
        .arg("--uncached-iters")
        .arg(opts.uncached_iters.to_string())
        .arg("--cached-iters")
        .arg(opts.cached_iters.to_string())
        .arg("--time-budget")
        .arg(opts.time_budget_s.to_string())
        .arg("--cache-ttl")
        .arg(opts.cache_ttl_s.to_string());
    if let Some(u) = &targets.postgres {
        cmd.arg("--postgres").arg(u);
    }
    if let Some(p) = &targets.sqlite {
        cmd.arg("--sqlite").arg(p);
    }
    if let Some(u) = &targets.mysql {
        cmd.arg("--mysql").arg(u);
    }
    // Killed when dropped: Ctrl-C or an error on our side must not leave the script running.
    larder_testkit::feast::run_script(cmd, None)
        .await
        .with_context(|| format!("{} {}", python.display(), script.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(stdout: &str) -> Result<FeastReport, larder_testkit::feast::ScriptError> {
        larder_testkit::feast::last_json_line(stdout)
    }

    #[test]
    fn parses_the_last_json_line() {
        let out = r#"noise
{"feast_version": "0.67.0", "views": 2, "backends": {"sqlite": {"url": "sqlite:////x", "connect_s": 0.1,
"apply_s": 1.5, "apply_per_s": 1.3, "reapply_s": 0.5, "reapply_per_s": 4.0, "reapply_changed": 0,
"refresh_ms": 3.0, "list_uncached_us": {"n": 5, "mean": 10.0, "p50": 9.0, "p99": 12.0},
"list_cached_first_us": 8.0, "list_cached_us": {"n": 7, "mean": 2.0, "p50": 2.0, "p99": 3.0}}},
"skipped": {"mysql": "no pymysql in the Feast venv"}}
"#
        .replace('\n', " ")
        .replacen("noise ", "noise\n", 1);
        let r = parse(&out).unwrap();
        assert_eq!(r.views, 2);
        let s = &r.backends["sqlite"];
        assert_eq!((s.apply_s, s.list_cached_us.n), (1.5, 7));
        assert_eq!(r.skipped["mysql"], "no pymysql in the Feast venv");
    }

    #[test]
    fn missing_json_is_an_error() {
        assert!(parse("Traceback ...\n").is_err());
    }
}
