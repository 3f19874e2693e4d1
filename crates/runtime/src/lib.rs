//! What every Larder binary repeats, kept in one place so `larder`, the
//! feature server, the registry server and the operator start, log, stop
//! and fail the same way:
//!
//! - [`run_binary`]: logging, a multi-threaded Tokio runtime, and a failed
//!   job printed as `error: …` with exit status 1;
//! - [`telemetry`]: the tracing subscriber on stderr, and OpenTelemetry
//!   traces over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (feature `otel`);
//! - [`shutdown`]: SIGINT/SIGTERM as a future, shareable by several listeners;
//! - [`tls`]: a PEM certificate chain and private key read from files
//!   (cargo features `tonic` and `rustls` for what the servers need);
//! - [`global_allocator!`]: mimalloc as the global allocator, in one line.

use std::fmt::Display;
use std::process::ExitCode;

#[cfg(feature = "otel")]
mod otel;
pub mod shutdown;
pub mod telemetry;
pub mod tls;

/// glibc malloc serialized the servers' worker threads on its arena lock
/// (a quarter of CPU time under load); mimalloc keeps per-thread heaps.
pub use mimalloc::MiMalloc;

/// Declares [`MiMalloc`] as the binary's global allocator; invoke once, at
/// the top level of the binary's `main.rs`.
#[macro_export]
macro_rules! global_allocator {
    () => {
        /// glibc malloc serialized the servers' worker threads on its arena
        /// lock (a quarter of CPU time under load); mimalloc keeps
        /// per-thread heaps.
        #[global_allocator]
        static GLOBAL: $crate::MiMalloc = $crate::MiMalloc;
    };
}

/// The shared `main` of Larder's binaries: logs to stderr ([`telemetry::init`],
/// `RUST_LOG` overrides `default_level`), runs `job` on a multi-threaded
/// runtime and maps its result to the exit status.
///
/// A failure is printed as `error: {e:#}`, so an `anyhow::Error` shows its
/// whole context chain; other error types should carry their cause in
/// `Display`.
pub fn run_binary<E: Display>(default_level: &str, job: impl Future<Output = Result<(), E>>) -> ExitCode {
    run_binary_with(default_level, telemetry::LogFormat::Text, job)
}

/// [`run_binary`] with the log line format the binary was asked for
/// (`--log-format`). Both also export OpenTelemetry traces when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set ([`telemetry::init_traced`], service
/// name: the executable's), flushed when `job` ends.
pub fn run_binary_with<E: Display>(
    default_level: &str,
    format: telemetry::LogFormat,
    job: impl Future<Output = Result<(), E>>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            telemetry::init_with(default_level, format);
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Inside the runtime: the OTLP exporter's connection lives on it.
    let tracing = {
        let _enter = runtime.enter();
        telemetry::init_traced(default_level, format, &binary_name())
    };
    let result = runtime.block_on(job);
    // Flush the last spans while the runtime (and the exporter's connection) still runs.
    tracing.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The running executable's file name (`larder`, `feature-server`, …): the
/// default `service.name` of its spans.
fn binary_name() -> String {
    std::env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "larder".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Failed;

    impl Display for Failed {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("job failed")
        }
    }

    #[test]
    fn run_binary_maps_the_result_to_the_exit_status() {
        assert_eq!(run_binary("warn", async { Ok::<(), Failed>(()) }), ExitCode::SUCCESS);
        assert_eq!(run_binary("warn", async { Err(Failed) }), ExitCode::FAILURE);
    }

    #[test]
    fn the_job_runs_on_a_multi_threaded_runtime() {
        let code = run_binary("warn", async {
            // block_in_place panics on a current-thread runtime.
            tokio::task::block_in_place(|| Ok::<(), Failed>(()))
        });
        assert_eq!(code, ExitCode::SUCCESS);
    }
}
