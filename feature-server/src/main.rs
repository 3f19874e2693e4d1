//! The `feature-server` binary: `larder serve` without the rest of the CLI.
//! Reads the same `larder.yaml` (Feast keys) and serves until SIGTERM.

fn main() -> std::process::ExitCode {
    eprintln!(
        "feature-server: use `larder serve` (this binary will take its own flags once the config crate is split out)"
    );
    std::process::ExitCode::FAILURE
}
