//! `larder-operator`: run the operator (in a cluster with its service
//! account, outside with `KUBECONFIG`), or write the CRDs (`crdgen`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use larder_operator::context::Settings;
use larder_operator::operator::{Config, LeaderSettings, Status, run};

larder_runtime::global_allocator!();

#[derive(Parser)]
#[command(name = "larder-operator", version, about = "Larder's Kubernetes operator")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
    /// Log lines as `text` (default) or `json` (one object per line, for log collectors).
    #[arg(long, global = true, env = "LARDER_LOG_FORMAT", default_value = "text")]
    log_format: larder_runtime::telemetry::LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Write the CustomResourceDefinitions as YAML files (one per kind).
    Crdgen {
        /// Directory to write to.
        #[arg(long, default_value = "crds")]
        out: PathBuf,
        /// Write nothing; fail when the files differ from the generated CRDs.
        #[arg(long)]
        check: bool,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Watch only this namespace (repeatable). Default: all namespaces.
    #[arg(long = "namespace", env = "LARDER_WATCH_NAMESPACES", value_delimiter = ',')]
    namespaces: Vec<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080", env = "LARDER_METRICS_ADDR")]
    metrics_addr: SocketAddr,
    /// Reconcile healthy resources again this often (corrects registry drift).
    #[arg(long, default_value_t = 300, env = "LARDER_RESYNC_SECONDS")]
    resync_seconds: u64,
    /// Reconciles at once per kind.
    #[arg(long, default_value_t = 8)]
    concurrency: u16,
    /// Elect a leader through a Lease so several replicas can run.
    #[arg(long, env = "LARDER_LEADER_ELECT")]
    leader_elect: bool,
    /// Namespace of the Lease (default: the pod's namespace, else "default").
    #[arg(long, env = "LARDER_LEADER_NAMESPACE")]
    leader_namespace: Option<String>,
    #[arg(long, default_value = "larder-operator-leader")]
    leader_lease: String,
    #[arg(long, default_value_t = 15)]
    leader_lease_seconds: u64,
    /// This replica's identity (default: $POD_NAME, else the host name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Image (`repository:tag`) of the servers and materialization Jobs when a
    /// FeatureStore names none; deployments set it to the operator's own image.
    #[arg(long, env = "LARDER_IMAGE")]
    image: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    larder_runtime::run_binary_with("info", cli.log_format, async move {
        match cli.command {
            Some(Command::Crdgen { out, check }) => crdgen(&out, check),
            None => operate(cli.run).await,
        }
    })
}

fn crdgen(out: &std::path::Path, check: bool) -> Result<()> {
    if check {
        let stale = larder_operator::crdgen::stale(out)?;
        if !stale.is_empty() {
            bail!(
                "{} differ from the generated CRDs: {}; run `larder-operator crdgen --out {}`",
                out.display(),
                stale.join(", "),
                out.display()
            );
        }
        return Ok(());
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for (file, crd) in larder_operator::crdgen::crds() {
        let path = out.join(file);
        std::fs::write(&path, larder_operator::crdgen::to_yaml(&crd)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

async fn operate(args: RunArgs) -> Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("cannot reach the Kubernetes API (in-cluster service account or KUBECONFIG)")?;
    let identity = args
        .identity
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("larder-operator-{}", std::process::id()));
    let leader = args.leader_elect.then(|| LeaderSettings {
        namespace: args
            .leader_namespace
            .or_else(|| std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace").ok())
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "default".into()),
        lease: args.leader_lease,
        duration: Duration::from_secs(args.leader_lease_seconds.max(3)),
    });
    let config = Config {
        namespaces: args.namespaces,
        settings: Settings {
            resync: Duration::from_secs(args.resync_seconds.max(1)),
            defaults: match args.image {
                Some(image) => larder_deploy::Defaults { image },
                None => larder_deploy::Defaults::default(),
            },
            ..Settings::default()
        },
        metrics_addr: Some(args.metrics_addr),
        leader,
        identity,
        concurrency: args.concurrency.max(1),
    };
    tracing::info!(namespaces = ?config.namespaces, metrics = %args.metrics_addr, "starting");
    run(client, config, Status::default(), larder_runtime::shutdown::signal()).await?;
    Ok(())
}
