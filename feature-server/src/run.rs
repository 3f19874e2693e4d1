//! Starting the server from `larder.yaml` and flags: shared by the
//! `feature-server` binary and `larder serve`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use larder_config::Settings;
use larder_registry::RegistryConfig;

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
    let reg = larder_registry::config::open_cached(registry)
        .await
        .with_context(|| format!("cannot open {}", registry.describe()))?;
    let online_cfg = settings.online_store()?;
    let online = larder_online::open(&online_cfg)
        .await
        .with_context(|| format!("cannot open {}", online_cfg.describe()))?;
    let mut state = AppState::new(reg, online, store_kind(&online_cfg), project, args.limits())?;
    state.postgres_url = settings.offline_postgres_url()?;
    let addr = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let state = Arc::new(state);
    // One signal stops both servers; each drains its in-flight requests.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        crate::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let grpc = if args.grpc_port != 0 {
        let gaddr = format!("{}:{}", args.host, args.grpc_port);
        let glistener = tokio::net::TcpListener::bind(&gaddr)
            .await
            .with_context(|| format!("cannot listen on {gaddr}"))?;
        eprintln!("gRPC ServingService on {gaddr}");
        let identity = match (&args.tls_cert, &args.tls_key) {
            (Some(c), Some(k)) => Some(tonic::transport::Identity::from_pem(
                std::fs::read(c).with_context(|| format!("cannot read {}", c.display()))?,
                std::fs::read(k).with_context(|| format!("cannot read {}", k.display()))?,
            )),
            _ => None,
        };
        Some(tokio::spawn(crate::grpc::serve(
            glistener,
            state.clone(),
            identity,
            stopped(stop_rx.clone()),
        )))
    } else {
        None
    };
    match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => {
            let tls = crate::tls::server_config(c, k, &[b"h2", b"http/1.1"])?;
            eprintln!(
                "serving project {project} on https://{addr} ({}; {})",
                registry.describe(),
                online_cfg.describe()
            );
            crate::serve_tls(listener, tls, state, stopped(stop_rx)).await?;
        }
        _ => {
            eprintln!(
                "serving project {project} on http://{addr} ({}; {})",
                registry.describe(),
                online_cfg.describe()
            );
            crate::serve(listener, state, stopped(stop_rx)).await?;
        }
    }
    if let Some(g) = grpc {
        g.await.context("gRPC server task")?.context("gRPC server")?;
    }
    Ok(())
}

/// The shared `main` of Larder's binaries: logs to stderr (`RUST_LOG`
/// overrides `default_level`), a multi-threaded runtime, and the error
/// chain printed with exit status 1.
pub fn run_binary(default_level: &str, job: impl Future<Output = Result<()>>) -> std::process::ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(job) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
