//! `larder_config::load`: what a binary sees at start.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// Log lines captured from `tracing`.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Each Feast key Larder does not implement is named in one warning at
/// start, however often the config is loaded; an unknown key stops the
/// start with the key and the file named.
#[test]
fn unimplemented_keys_warn_once_and_unknown_keys_fail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("larder.yaml");
    std::fs::write(
        &path,
        "project: demo\nprovider: aws\nregistry:\n  registry_type: sql\n  path: sqlite:///data/registry.db\n  schema_mode: verify\nonline_store: {type: sqlite, path: data/online.db}\n",
    )
    .unwrap();
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..2 {
            let settings = larder_config::load(Some(&path), None, None).unwrap();
            assert_eq!(settings.project.as_deref(), Some("demo"));
        }
    });
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    for key in ["`provider`", "`registry.schema_mode`"] {
        assert_eq!(text.matches(key).count(), 1, "{key} once in:\n{text}");
    }
    assert!(
        text.contains("WARN") && text.contains(&path.display().to_string()),
        "{text}"
    );

    std::fs::write(
        &path,
        "project: demo\nonline_store: {type: sqlite, pth: data/online.db}\n",
    )
    .unwrap();
    let err = larder_config::load(Some(&path), None, None).unwrap_err().to_string();
    assert!(
        err.contains(&path.display().to_string()) && err.contains("unknown key `online_store.pth`"),
        "{err}"
    );
}
