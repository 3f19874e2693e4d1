//! Starting the registry server from `larder.yaml` and flags: shared by the
//! `registry-server` binary and `larder registry-server`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use larder_registry::RegistryConfig;

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
    let reg = larder_registry::config::open_cached(registry)
        .await
        .with_context(|| format!("cannot open {}", registry.describe()))?;
    let identity = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some(tonic::transport::Identity::from_pem(
            std::fs::read(c).with_context(|| format!("cannot read {}", c.display()))?,
            std::fs::read(k).with_context(|| format!("cannot read {}", k.display()))?,
        )),
        _ => None,
    };
    let addr = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    eprintln!("registry server on {addr} ({})", registry.describe());
    crate::serve(listener, reg, identity, shutdown_signal())
        .await
        .context("registry server")?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: draining in-flight calls");
}
