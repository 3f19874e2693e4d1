//! Logging for every binary: human-readable lines on stderr, so stdout stays
//! free for command output (`larder get -o json`), filtered by `RUST_LOG`.

use tracing_subscriber::EnvFilter;

/// Installs the global tracing subscriber: fmt lines on stderr, filtered by
/// `RUST_LOG` when it is set and valid, else by `default_level` (`"info"`,
/// `"warn"`, or any `EnvFilter` directive).
///
/// A subscriber that is already installed (a second call, a test harness)
/// is kept.
pub fn init(default_level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_second_init_keeps_the_first_subscriber() {
        super::init("info");
        super::init("debug");
        tracing::info!("still logging");
    }
}
