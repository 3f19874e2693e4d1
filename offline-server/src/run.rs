//! Starting the offline server from `larder.yaml` and flags: shared by the
//! `offline-server` binary and `larder offline-server`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use larder_runtime::tls::PemPair;

#[derive(clap::Args, Debug, Clone)]
pub struct OfflineServerArgs {
    #[arg(long, default_value = "127.0.0.1", env = "LARDER_HOST")]
    pub host: String,
    /// Feast's `feast serve_offline` port.
    #[arg(long, default_value_t = 8815, env = "LARDER_OFFLINE_PORT")]
    pub port: u16,
    /// PEM certificate chain: serve over TLS (with --tls-key); Feast clients then use `scheme: https`.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// Serves historical retrieval over the registry and offline store of `settings`.
pub async fn run(settings: &larder_config::Settings, args: &OfflineServerArgs) -> Result<()> {
    let identity =
        PemPair::load_optional(args.tls_cert.as_deref(), args.tls_key.as_deref())?.map(|pair| pair.tonic_identity());
    let registry = settings
        .registry
        .as_ref()
        .context("no registry configured: set `registry` in larder.yaml, --registry or LARDER_REGISTRY")?;
    let auth = larder_auth::Auth::from_config(
        &larder_auth::AuthConfig::from_yaml(settings.auth.as_ref())?.with_base_dir(&settings.base_dir),
    )
    .await?;
    auth.warn_if_open(&args.host);
    let postgres_url = settings.offline_postgres_url()?;
    let reg = larder_registry::config::open_cached(registry)
        .await
        .with_context(|| format!("cannot open {}", registry.describe()))?;
    reg.refresh()
        .await
        .with_context(|| format!("cannot read {}", registry.describe()))?;
    let addr = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    eprintln!(
        "offline server (Arrow Flight) on {addr} ({}; {})",
        registry.describe(),
        auth.describe()
    );
    let shutdown = larder_runtime::shutdown::on_signal();
    let service = crate::OfflineService::new(reg, settings.project.clone(), postgres_url, std::sync::Arc::new(auth));
    crate::serve(listener, service, identity, shutdown.wait())
        .await
        .context("offline server")
}
