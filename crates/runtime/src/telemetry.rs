//! Logging for every binary: lines on stderr, so stdout stays free for
//! command output (`larder get -o json`), filtered by `RUST_LOG`; human
//! readable by default, one JSON object per line with `--log-format json`
//! (`LARDER_LOG_FORMAT=json`) for log collectors.

use std::str::FromStr;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `2026-01-01T00:00:00Z  INFO target: message key=value`.
    #[default]
    Text,
    /// `{"timestamp":…,"level":"INFO","fields":{"message":…},"target":…,"span":…}`.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("log format {other:?}: use text or json")),
        }
    }
}

/// Installs the global tracing subscriber on stderr, filtered by `RUST_LOG`
/// when it is set and valid, else by `default_level` (`"info"`, `"warn"`,
/// or any `EnvFilter` directive).
///
/// A subscriber that is already installed (a second call, a test harness)
/// is kept.
pub fn init(default_level: &str) {
    init_with(default_level, LogFormat::Text);
}

/// [`init`] with a chosen line format.
pub fn init_with(default_level: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_init_keeps_the_first_subscriber() {
        super::init("info");
        super::init_with("debug", LogFormat::Json);
        tracing::info!("still logging");
    }

    #[test]
    fn formats_parse() {
        assert_eq!("JSON".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!(" text ".parse::<LogFormat>(), Ok(LogFormat::Text));
        assert!("yaml".parse::<LogFormat>().unwrap_err().contains("text or json"));
    }
}
