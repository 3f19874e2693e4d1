//! Feast 0.67's SDK, the client the e2e tests check Larder against.

use std::path::PathBuf;

/// The Feast 0.67 venv's python (`LARDER_FEAST_PYTHON`, else
/// `~/.cache/larder/feast-0.67.0/bin/python`, installed by
/// `scripts/feast-venv.sh`). In CI (`CI` set) a missing venv fails the
/// test; elsewhere the caller skips the Feast part, and this says so.
pub fn python() -> Option<PathBuf> {
    let p = std::env::var_os("LARDER_FEAST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/larder/feast-0.67.0/bin/python")
        });
    if p.exists() {
        return Some(p);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "Feast venv not found at {} (CI must install it: scripts/feast-venv.sh)",
            p.display()
        );
    }
    eprintln!(
        "SKIPPED: Feast 0.67 venv not found at {}; run scripts/feast-venv.sh",
        p.display()
    );
    None
}

/// Why a Feast benchmark script gave no result.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("cannot start the Feast script: {0}")]
    Start(std::io::Error),
    #[error("the Feast script did not finish within {} s", .0.as_secs())]
    Timeout(std::time::Duration),
    #[error("the Feast script failed ({status}); stdout:\n{stdout}")]
    Failed {
        status: std::process::ExitStatus,
        stdout: String,
    },
    #[error("no JSON line in the Feast script's output:\n{0}")]
    NoJson(String),
    #[error("parse the Feast script's JSON ({error}): {line}")]
    Parse { line: String, error: serde_json::Error },
}

/// Run a Feast script (`cmd`: the venv's python, the script and its
/// arguments) as the benchmarks do: UTC, Feast's usage telemetry off, stdin
/// closed, stderr passed through, killed if the caller gives up (Ctrl-C,
/// an error, the `timeout`); its result is the last JSON line of stdout.
pub async fn run_script<T: serde::de::DeserializeOwned>(
    mut cmd: tokio::process::Command,
    timeout: Option<std::time::Duration>,
) -> Result<T, ScriptError> {
    use std::process::Stdio;
    cmd.env("TZ", "UTC")
        .env("FEAST_USAGE", "False")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(ScriptError::Start)?;
    let out = match timeout {
        Some(t) => tokio::time::timeout(t, child.wait_with_output())
            .await
            .map_err(|_| ScriptError::Timeout(t))?,
        None => child.wait_with_output().await,
    }
    .map_err(ScriptError::Start)?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(ScriptError::Failed {
            status: out.status,
            stdout,
        });
    }
    last_json_line(&stdout)
}

/// The last stdout line that is a JSON object, parsed.
pub fn last_json_line<T: serde::de::DeserializeOwned>(stdout: &str) -> Result<T, ScriptError> {
    let line = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| ScriptError::NoJson(stdout.to_string()))?;
    serde_json::from_str(line).map_err(|error| ScriptError::Parse {
        line: line.to_string(),
        error,
    })
}
