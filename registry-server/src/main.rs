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
}

async fn main_async(args: Args) -> Result<()> {
    let settings = larder_config::load(args.config.as_deref(), None, args.registry)?;
    let registry = settings.registry.ok_or_else(|| anyhow!("no registry configured"))?;
    run(&registry, &args.server).await
}

fn main() -> ExitCode {
    larder_runtime::run_binary("info", main_async(Args::parse()))
}
