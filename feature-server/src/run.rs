//! Starting the server from `larder.yaml` and flags: shared by the
//! `feature-server` binary and `larder serve`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use larder_config::Settings;
use larder_registry::RegistryConfig;
use larder_runtime::tls::PemPair;

use crate::{AppState, Limits};

#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    #[arg(long, default_value = "127.0.0.1", env = "LARDER_HOST")]
    pub host: String,
    #[arg(long, default_value_t = 6566, env = "LARDER_PORT")]
    pub port: u16,
    /// Port of the gRPC ServingService (and gRPC health); 0 disables it.
    #[arg(long, default_value_t = 6567, env = "LARDER_GRPC_PORT")]
    pub grpc_port: u16,
    /// Largest request body accepted (413 above it).
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Most entity rows in one request.
    #[arg(long, default_value_t = 10_000)]
    pub max_entities: usize,
    /// Most feature references in one request.
    #[arg(long, default_value_t = 1_000)]
    pub max_features: usize,
    /// PEM certificate chain: serve HTTPS and gRPC over TLS (with --tls-key).
    #[arg(long, requires = "tls_key", env = "LARDER_TLS_CERT")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert", env = "LARDER_TLS_KEY")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout_seconds: u64,
}

impl ServeArgs {
    fn limits(&self) -> Limits {
        Limits {
            max_body_bytes: self.max_body_bytes,
            max_entities: self.max_entities,
            max_features: self.max_features,
            request_timeout: Duration::from_secs(self.timeout_seconds.max(1)),
        }
    }
}

fn store_kind(cfg: &larder_online::OnlineStoreConfig) -> &'static str {
    match cfg {
        larder_online::OnlineStoreConfig::Sqlite { .. } => "sqlite",
        larder_online::OnlineStoreConfig::Redis(_) => "redis",
        larder_online::OnlineStoreConfig::Postgres(_) => "postgres",
        larder_online::OnlineStoreConfig::MySql(_) => "mysql",
    }
}

pub async fn serve(settings: &Settings, registry: &RegistryConfig, project: &str, args: &ServeArgs) -> Result<()> {
    // Read first: a bad file is a startup error naming it, before any
    // connection or port.
    let tls = PemPair::load_optional(args.tls_cert.as_deref(), args.tls_key.as_deref())?;
    let https = tls
        .as_ref()
        .map(|pair| pair.rustls_config(&[b"h2", b"http/1.1"]))
        .transpose()?;
    let reg = larder_registry::config::open_cached(registry)
        .await
        .with_context(|| format!("cannot open {}", registry.describe()))?;
    // The first snapshot before the port opens: after it, no request waits
    // for the registry, and /health is ready only with something to serve.
    reg.refresh()
        .await
        .with_context(|| format!("cannot read {}", registry.describe()))?;
    let online_cfg = settings.online_store()?;
    let online = larder_online::open(&online_cfg)
        .await
        .with_context(|| format!("cannot open {}", online_cfg.describe()))?;
    let auth = larder_auth::Auth::from_config(
        &larder_auth::AuthConfig::from_yaml(settings.auth.as_ref())?.with_base_dir(&settings.base_dir),
    )
    .await?;
    auth.warn_if_open(&args.host);
    let mut state = AppState::new(reg, online, store_kind(&online_cfg), project, args.limits())?;
    state.postgres_url = settings.offline_postgres_url()?;
    state.auth = Arc::new(auth);
    let addr = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let state = Arc::new(state);
    // One signal stops both servers; each drains its in-flight requests.
    let shutdown = larder_runtime::shutdown::on_signal();
    let grpc = if args.grpc_port != 0 {
        let gaddr = format!("{}:{}", args.host, args.grpc_port);
        let glistener = tokio::net::TcpListener::bind(&gaddr)
            .await
            .with_context(|| format!("cannot listen on {gaddr}"))?;
        eprintln!("gRPC ServingService on {gaddr}");
        Some(tokio::spawn(crate::grpc::serve(
            glistener,
            state.clone(),
            tls.as_ref().map(PemPair::tonic_identity),
            shutdown.wait(),
        )))
    } else {
        None
    };
    match https {
        Some(tls) => {
            eprintln!(
                "serving project {project} on https://{addr} ({}; {}; {})",
                registry.describe(),
                online_cfg.describe(),
                state.auth.describe()
            );
            crate::serve_tls(listener, tls, state, shutdown.wait()).await?;
        }
        None => {
            eprintln!(
                "serving project {project} on http://{addr} ({}; {}; {})",
                registry.describe(),
                online_cfg.describe(),
                state.auth.describe()
            );
            crate::serve(listener, state, shutdown.wait()).await?;
        }
    }
    if let Some(g) = grpc {
        g.await.context("gRPC server task")?.context("gRPC server")?;
    }
    Ok(())
}
