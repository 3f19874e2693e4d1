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
