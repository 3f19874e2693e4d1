//! The `registry-server` binary: Feast's RegistryServer gRPC API (default
//! port 6570) over the registry configured in `larder.yaml`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, anyhow};
use clap::Parser;
use larder_registry_server::run::{RegistryServerArgs, run};

larder_runtime::global_allocator!();

#[derive(Parser)]
#[command(
    name = "registry-server",
    version,
    about = "Larder registry server (Feast 0.67 RegistryServer gRPC API)"
)]
struct Args {
    #[arg(short, long, env = "LARDER_CONFIG")]
    config: Option<PathBuf>,
    #[arg(long, env = "LARDER_REGISTRY")]
    registry: Option<String>,
    #[command(flatten)]
    server: RegistryServerArgs,
    /// Log lines as `text` (default) or `json` (one object per line, for log collectors).
    #[arg(long, env = "LARDER_LOG_FORMAT", default_value = "text")]
    log_format: larder_runtime::telemetry::LogFormat,
}

async fn main_async(args: Args) -> Result<()> {
    let settings = larder_config::load(args.config.as_deref(), None, args.registry)?;
    let registry = settings
        .registry
        .as_ref()
        .ok_or_else(|| anyhow!("no registry configured"))?;
    run(registry, settings.auth.as_ref(), &settings.base_dir, &args.server).await
}

fn main() -> ExitCode {
    let args = Args::parse();
    let format = args.log_format;
    larder_runtime::run_binary_with("info", format, main_async(args))
}
