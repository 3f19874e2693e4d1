//! The `offline-server` binary: Feast's remote offline store protocol
//! (Arrow Flight, default port 8815) over the registry and offline store
//! configured in `larder.yaml`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use larder_offline_server::run::{OfflineServerArgs, run};

larder_runtime::global_allocator!();

#[derive(Parser)]
#[command(
    name = "offline-server",
    version,
    about = "Larder offline server (Feast 0.67 remote offline store, Arrow Flight)"
)]
struct Args {
    #[arg(short, long, env = "LARDER_CONFIG")]
    config: Option<PathBuf>,
    #[arg(long, env = "LARDER_REGISTRY")]
    registry: Option<String>,
    #[command(flatten)]
    server: OfflineServerArgs,
    /// Log lines as `text` (default) or `json` (one object per line, for log collectors).
    #[arg(long, env = "LARDER_LOG_FORMAT", default_value = "text")]
    log_format: larder_runtime::telemetry::LogFormat,
}

async fn main_async(args: Args) -> Result<()> {
    let settings = larder_config::load(args.config.as_deref(), None, args.registry)?;
    run(&settings, &args.server).await
}

fn main() -> ExitCode {
    let args = Args::parse();
    let format = args.log_format;
    larder_runtime::run_binary_with("info", format, main_async(args))
}
