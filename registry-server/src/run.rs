//! Starting the registry server from `larder.yaml` and flags: shared by the
//! `registry-server` binary and `larder registry-server`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use larder_registry::RegistryConfig;
use larder_runtime::tls::PemPair;

use crate::metrics::Metrics;

#[derive(clap::Args, Debug, Clone)]
pub struct RegistryServerArgs {
    #[arg(long, default_value = "127.0.0.1", env = "LARDER_HOST")]
    pub host: String,
    #[arg(long, default_value_t = 6570, env = "LARDER_REGISTRY_PORT")]
    pub port: u16,
    /// Plain-HTTP side port (on --host): `GET /metrics` serves the Prometheus text of the RPC
    /// counters and latencies (larder_registry_rpc_total, larder_registry_rpc_duration_seconds) and the registry
    /// cache (larder_registry_snapshot_age_seconds, larder_registry_refresh_failures_total, larder_registry_stale);
    /// `GET /healthz` answers 200 "ok" when the registry can be read, 200 "stale: …" while it cannot
    /// and cached reads are served from the last good snapshot, 503 before any snapshot is loaded;
    /// for Kubernetes readiness and liveness probes. 0 disables the side port.
    #[arg(long, default_value_t = 6571, env = "LARDER_REGISTRY_METRICS_PORT")]
    pub metrics_port: u16,
    /// PEM certificate chain: serve over TLS (with --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// Serves `registry`; `auth` is the `auth` section of `larder.yaml`, relative
/// paths in it resolved against `base_dir`.
pub async fn run(
    registry: &RegistryConfig,
    auth: Option<&serde_yaml::Value>,
    base_dir: &std::path::Path,
    args: &RegistryServerArgs,
) -> Result<()> {
    // Read first: a bad file is a startup error naming it, before any
    // connection or port.
    let identity =
        PemPair::load_optional(args.tls_cert.as_deref(), args.tls_key.as_deref())?.map(|pair| pair.tonic_identity());
    let auth =
        larder_auth::Auth::from_config(&larder_auth::AuthConfig::from_yaml(auth)?.with_base_dir(base_dir)).await?;
    auth.warn_if_open(&args.host);
    let reg = larder_registry::config::open_cached(registry)
        .await
        .with_context(|| format!("cannot open {}", registry.describe()))?;
    // The first snapshot before the port opens: after it, no request waits
    // for the registry, and /healthz is ready only with something to serve.
    reg.refresh()
        .await
        .with_context(|| format!("cannot read {}", registry.describe()))?;
    let addr = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    // Both ports are bound before serving: a taken port is a startup error.
    let side = if args.metrics_port != 0 {
        let maddr = format!("{}:{}", args.host, args.metrics_port);
        let mlistener = tokio::net::TcpListener::bind(&maddr)
            .await
            .with_context(|| format!("cannot listen on {maddr} (--metrics-port)"))?;
        Some((maddr, mlistener))
    } else {
        None
    };
    eprintln!(
        "registry server on {addr} ({}; {})",
        registry.describe(),
        auth.describe()
    );
    // One signal stops both servers; each drains its in-flight requests.
    let shutdown = larder_runtime::shutdown::on_signal();
    let (metrics, side) = match side {
        Some((maddr, mlistener)) => {
            let metrics = Arc::new(Metrics::new().context("registry server metrics")?);
            eprintln!("metrics on http://{maddr}/metrics, health check on http://{maddr}/healthz");
            let task = tokio::spawn(crate::metrics::serve_side(
                metrics.clone(),
                reg.clone(),
                mlistener,
                shutdown.wait(),
            ));
            (Some(metrics), Some(task))
        }
        None => (None, None),
    };
    let service = crate::RegistryService::with_auth(reg, Arc::new(auth));
    crate::serve_service(listener, service, identity, metrics, shutdown.wait())
        .await
        .context("registry server")?;
    if let Some(task) = side {
        task.await.context("metrics server task")?.context("metrics server")?;
    }
    Ok(())
}
