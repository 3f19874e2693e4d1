//! The `registry-server` binary: Feast's RegistryServer gRPC API (default
//! port 6570) over the registry configured in `larder.yaml`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, anyhow};
use clap::Parser;
use larder_registry_server::run::{RegistryServerArgs, run};

/// glibc malloc serialized the servers' worker threads on its arena lock
/// (a quarter of CPU time under load); mimalloc keeps per-thread heaps.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main_async(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
