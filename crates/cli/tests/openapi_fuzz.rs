//! The feature server against its own OpenAPI document (issue 12, item 3):
//! schemathesis (pinned 4.x, installed by scripts/schemathesis-venv.sh)
//! fuzzes a live `larder serve` from `/openapi.json` with every check
//! (`--checks all`: no 5xx, documented statuses, content types, headers and
//! response schemas, schema-valid bodies accepted, schema-invalid ones
//! refused, unsupported methods answered 405, ...) and must find nothing.
//!
//! The store is the bundled example, applied and materialized into a
//! temporary SQLite registry and online store, so the fuzzer's requests
//! reach real views (the document's examples name them). The run is
//! deterministic (fixed seed, bounded examples per operation) and covers
//! every operation, `/materialize*` included. What the schema cannot say
//! (a body that is well formed but names an unknown feature, a missing join
//! key, a window whose start is not before its end) is listed in
//! e2e/openapi/schemathesis.toml as the documented answers schema-valid
//! requests may get.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// Fixed, so that a failure reproduces.
const SEED: &str = "20261112";
/// Examples per operation and phase: some 1,400 requests in all, which
/// reach every documented answer (success included) in about 20 s.
const MAX_EXAMPLES: &str = "200";
/// A run that takes longer than this is a failure (it normally takes ~20 s).
const TIMEOUT: Duration = Duration::from_secs(300);

/// The schemathesis executable (`LARDER_SCHEMATHESIS`, else the venv
/// scripts/schemathesis-venv.sh makes). In CI (`CI` set) a missing one
/// fails the test; elsewhere the test is skipped, and says so.
fn schemathesis() -> Option<PathBuf> {
    let p = std::env::var_os("LARDER_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/larder/schemathesis-4.32.5/bin/schemathesis")
        });
    if p.exists() {
        return Some(p);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "schemathesis not found at {} (CI must install it: scripts/schemathesis-venv.sh)",
            p.display()
        );
    }
    eprintln!(
        "SKIPPED: schemathesis not found at {}; run scripts/schemathesis-venv.sh",
        p.display()
    );
    None
}

#[test]
fn schemathesis_finds_no_mismatch() {
    let Some(st) = schemathesis() else { return };
    // A copy of the example: `/push` with `to: offline` appends to the push
    // source's batch source, which must not be the repository's data file.
    let (dir, cfg) = example_repo(ExampleData::Copied);
    let c = cfg.to_str().unwrap();
    let out = larder_ok(&["-c", c, "materialize", "2024-01-01", "2024-01-03"]);
    assert!(out.contains("driver_hourly_stats: 1000 rows"), "{out}");
    let server = start_serve(&cfg, dir.path().join("serve.log"));
    let schema = format!("http://127.0.0.1:{}/openapi.json", server.port);

    let config = repo_root().join("e2e/openapi/schemathesis.toml");
    let report = dir.path().join("schemathesis.txt");
    let started = Instant::now();
    let mut child = Command::new(&st)
        .arg("--config-file")
        .arg(&config)
        .args([
            "run",
            &schema,
            "--checks",
            "all",
            "--seed",
            SEED,
            "--max-examples",
            MAX_EXAMPLES,
            // One worker and no example database: the same requests on every run.
            "--workers",
            "1",
            "--generation-database",
            "none",
            "--no-color",
        ])
        // Anything it caches stays in the temp dir.
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&report).unwrap())
        .stderr(std::fs::File::create(dir.path().join("schemathesis.err")).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", st.display()));
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let took = started.elapsed();
    let output = std::fs::read_to_string(&report).unwrap_or_default();
    let errors = std::fs::read_to_string(dir.path().join("schemathesis.err")).unwrap_or_default();
    eprintln!("{output}");
    eprintln!("schemathesis took {:.1}s", took.as_secs_f64());
    let log = server.log_text();
    assert!(
        status.is_some_and(|s| s.success()),
        "schemathesis {} after {:.0}s (seed {SEED}, {MAX_EXAMPLES} examples):\n{output}\n{errors}\nserver log:\n{log}",
        status.map_or("timed out".to_string(), |s| s.to_string()),
        took.as_secs_f64()
    );
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
    // Still serving, and it stops cleanly.
    assert!(matches!(raw_get(server.port, "/health"), Some((200, _))));
    server.terminate(Duration::from_secs(10));
}
