//! The `feature-server` binary: Feast's HTTP serving API for one project,
//! configured by `larder.yaml` (Feast's feature_store.yaml keys) and flags.
//! The same server runs as `larder serve`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use clap::Parser;
use larder_feature_server::run::{ServeArgs, serve};

larder_runtime::global_allocator!();

#[derive(Parser)]
#[command(
    name = "feature-server",
    version,
    about = "Larder feature server (Feast 0.67 HTTP API)"
)]
struct Args {
    /// Config file (Feast feature_store.yaml keys). Default: ./larder.yaml, then ./feature_store.yaml.
    #[arg(short, long, env = "LARDER_CONFIG")]
    config: Option<PathBuf>,
    #[arg(short, long, env = "LARDER_PROJECT")]
    project: Option<String>,
    /// Registry location (database URL or file path), overriding the config.
    #[arg(long, env = "LARDER_REGISTRY")]
    registry: Option<String>,
    #[command(flatten)]
    serve: ServeArgs,
    /// Log lines as `text` (default) or `json` (one object per line, for log collectors).
    #[arg(long, env = "LARDER_LOG_FORMAT", default_value = "text")]
    log_format: larder_runtime::telemetry::LogFormat,
}

async fn run(args: Args) -> Result<()> {
    let settings = larder_config::load(args.config.as_deref(), args.project, args.registry)?;
    let project = settings
        .project
        .clone()
        .ok_or_else(|| anyhow!("no project: set `project` in larder.yaml or --project"))?;
    let registry = settings
        .registry
        .clone()
        .ok_or_else(|| anyhow!("no registry configured"))?;
    serve(&settings, &registry, &project, &args.serve)
        .await
        .context("feature server failed")
}

fn main() -> ExitCode {
    let args = Args::parse();
    let format = args.log_format;
    larder_runtime::run_binary_with("info", format, run(args))
}
