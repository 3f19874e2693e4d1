//! Starting the registry server from `larder.yaml` and flags: shared by the
//! `registry-server` binary and `larder registry-server`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use larder_registry::RegistryConfig;
use larder_runtime::tls::PemPair;

#[derive(clap::Args, Debug, Clone)]
pub struct RegistryServerArgs {
    #[arg(long, default_value = "127.0.0.1", env = "LARDER_HOST")]
    pub host: String,
    #[arg(long, default_value_t = 6570, env = "LARDER_REGISTRY_PORT")]
    pub port: u16,
    /// Side port for Prometheus `/metrics`; 0 disables it.
    #[arg(long, default_value_t = 6571, env = "LARDER_REGISTRY_METRICS_PORT")]
    pub metrics_port: u16,
    /// PEM certificate chain: serve over TLS (with --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

pub async fn run(registry: &RegistryConfig, args: &RegistryServerArgs) -> Result<()> {
    // Read first: a bad file is a startup error naming it, before any
    // connection or port.
    let identity =
        PemPair::load_optional(args.tls_cert.as_deref(), args.tls_key.as_deref())?.map(|pair| pair.tonic_identity());
    let reg = larder_registry::config::open_cached(registry)
        .await
        .with_context(|| format!("cannot open {}", registry.describe()))?;
    let addr = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    eprintln!("registry server on {addr} ({})", registry.describe());
    crate::serve(listener, reg, identity, larder_runtime::shutdown::signal())
        .await
        .context("registry server")?;
    Ok(())
}
