//! `larder`: apply, plan, list, get and delete Larder objects in a Feast
//! registry, from the same YAML manifests the operator reconciles.

mod historical;
mod online;
mod output;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand, ValueEnum};
use larder_apply::Action;
use larder_model::feast::FeastKind;
use larder_model::{load, validate};
use larder_registry::{Registry, RegistryConfig};

larder_runtime::global_allocator!();

#[derive(Parser)]
#[command(
    name = "larder",
    version,
    about = "Kubernetes-native, Feast-compatible feature store"
)]
struct Cli {
    /// Config file (Feast feature_store.yaml keys). Default: ./larder.yaml, then ./feature_store.yaml.
    #[arg(short, long, global = true, env = "LARDER_CONFIG")]
    config: Option<PathBuf>,
    /// Feast project (overrides the config and FeatureStore manifests).
    #[arg(short, long, global = true, env = "LARDER_PROJECT")]
    project: Option<String>,
    /// Registry location: a database URL (postgresql://, mysql://, sqlite:///) or a registry file path.
    #[arg(long, global = true, env = "LARDER_REGISTRY")]
    registry: Option<String>,
    /// Log verbosity (also RUST_LOG).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Log lines as `text` (default) or `json` (one object per line, for log collectors).
    #[arg(long, global = true, env = "LARDER_LOG_FORMAT", default_value = "text")]
    log_format: larder_runtime::telemetry::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create or update the objects in the manifests (idempotent).
    Apply {
        /// Manifest files or directories.
        #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// Delete registry objects of the project that the manifests no longer declare.
        #[arg(long)]
        prune: bool,
    },
    /// Show what apply would change, without writing.
    Plan {
        #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        #[arg(long)]
        prune: bool,
    },
    /// List objects of a kind (entities, datasources, featureviews, featureservices, permissions, projects, …).
    Ls {
        kind: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Show one object as a manifest.
    Get {
        kind: String,
        name: String,
        #[arg(short, long, value_enum, default_value = "yaml")]
        output: Format,
    },
    /// Delete one object.
    Delete { kind: String, name: String },
    /// Copy the latest rows in [START, END) from the views' batch sources to the online store.
    Materialize {
        start: String,
        end: String,
        /// Only these views (default: every online view).
        #[arg(long, value_delimiter = ',')]
        views: Vec<String>,
        /// Write only shard I of N (0 <= I < N, numbered from 0 like indexed Jobs): the entity keys
        /// whose hash modulo N is I. Records no materialization interval; whoever runs all N shards
        /// records it once every shard succeeded.
        #[arg(long, value_name = "I/N")]
        shard: Option<larder_materialize::Shard>,
    },
    /// Materialize each view from where its last run ended up to END.
    MaterializeIncremental {
        end: String,
        #[arg(long, value_delimiter = ',')]
        views: Vec<String>,
    },
    /// Read features from the online store.
    GetOnlineFeatures {
        /// VIEW:FEATURE references, comma-separated or repeated.
        #[arg(long)]
        features: Vec<String>,
        /// A feature service instead of --features.
        #[arg(long)]
        feature_service: Option<String>,
        /// JOIN_KEY=V1,V2,... (repeat for composite keys).
        #[arg(long = "entity", required = true)]
        entities: Vec<String>,
        /// Name features VIEW__FEATURE.
        #[arg(long)]
        full_feature_names: bool,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Build a point-in-time correct training set: for every row of an entity file, the
    /// feature values as of its event_timestamp, written to a Parquet file. Every entity row is
    /// kept (rows without feature data get nulls).
    GetHistoricalFeatures {
        /// Entity rows (.parquet or .csv): the join keys and an event_timestamp column; other columns are kept.
        #[arg(long)]
        entities: PathBuf,
        /// VIEW:FEATURE references, comma-separated or repeated.
        #[arg(long, value_delimiter = ',')]
        features: Vec<String>,
        /// A feature service instead of --features.
        #[arg(long)]
        feature_service: Option<String>,
        /// Name features VIEW__FEATURE (the alias for feature service projections).
        #[arg(long)]
        full_feature_names: bool,
        /// The training set (.parquet); written to a temporary file and renamed.
        #[arg(long)]
        output: PathBuf,
    },
    /// Serve Feast's HTTP feature-serving API.
    Serve(serve::ServeArgs),
    /// Apply and materialize the bundled example into a local SQLite registry
    /// and online store, then serve it on 127.0.0.1:6566.
    Up(serve::UpArgs),
    /// Serve Feast's RegistryServer gRPC API over the configured registry.
    RegistryServer(larder_registry_server::run::RegistryServerArgs),
    /// Serve Feast's remote offline store protocol (Arrow Flight, `feast serve_offline`):
    /// point-in-time correct training sets for Feast SDKs configured with
    /// `offline_store: {type: remote, host, port}`.
    OfflineServer(larder_offline_server::run::OfflineServerArgs),
    /// Print every Kubernetes object the operator would create for the
    /// FeatureStores and views in the manifests (for review; nothing is applied).
    Render {
        /// Manifest files or directories.
        #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// Namespace of documents that name none.
        #[arg(short, long, default_value = "default")]
        namespace: String,
        /// Image (`repository:tag`) when a FeatureStore names none (the operator's `--image`).
        #[arg(long, env = "LARDER_IMAGE")]
        image: Option<String>,
    },
    /// Remove the registry's tables or file.
    Teardown {
        /// Confirm: this deletes every object of every project.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    Table,
    Yaml,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let format = cli.log_format;
    larder_runtime::run_binary_with(level, format, run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    let settings = larder_config::load(cli.config.as_deref(), cli.project.clone(), cli.registry.clone())?;
    match cli.command {
        Command::Apply { files, prune } => apply(&settings, &files, prune, false).await,
        Command::Plan { files, prune } => apply(&settings, &files, prune, true).await,
        Command::Ls { kind, output } => {
            let kind = parse_kind(&kind)?;
            let reg = open(&settings).await?;
            let project = project_for_reads(&settings)?;
            let mut objects = reg.list(&project, kind).await?;
            // Feast's placeholder entity for entity-less views stays hidden, as in the SDK.
            objects.retain(|o| !(kind == FeastKind::Entity && o.name() == "__dummy"));
            output::print_list(kind, &objects, output)
        }
        Command::Get { kind, name, output } => {
            let kind = parse_kind(&kind)?;
            let reg = open(&settings).await?;
            let project = project_for_reads(&settings)?;
            let obj = reg
                .get(&project, kind, &name)
                .await?
                .ok_or_else(|| anyhow!("{kind} {name} does not exist in project {project}"))?;
            output::print_one(&obj, output)
        }
        Command::Delete { kind, name } => {
            let kind = parse_kind(&kind)?;
            let reg = open(&settings).await?;
            let project = project_for_reads(&settings)?;
            if reg.delete(&project, kind, &name).await? {
                println!("deleted {kind} {name}");
                Ok(())
            } else {
                bail!("{kind} {name} does not exist in project {project}")
            }
        }
        Command::Materialize {
            start,
            end,
            views,
            shard,
        } => {
            let project = project_for_reads(&settings)?;
            let reg = open(&settings).await?;
            online::materialize(&settings, reg, &project, Some(&start), &end, &views, shard).await
        }
        Command::MaterializeIncremental { end, views } => {
            let project = project_for_reads(&settings)?;
            online::materialize(&settings, open(&settings).await?, &project, None, &end, &views, None).await
        }
        Command::GetOnlineFeatures {
            features,
            feature_service,
            entities,
            full_feature_names,
            output,
        } => {
            let project = project_for_reads(&settings)?;
            let args = online::OnlineArgs {
                features: &features,
                feature_service: feature_service.as_deref(),
                entities: &entities,
                full_feature_names,
                output,
            };
            online::get(&settings, open(&settings).await?, &project, args).await
        }
        Command::GetHistoricalFeatures {
            entities,
            features,
            feature_service,
            full_feature_names,
            output,
        } => {
            let project = project_for_reads(&settings)?;
            let args = historical::HistoricalArgs {
                entities: &entities,
                features: &features,
                feature_service: feature_service.as_deref(),
                full_feature_names,
                output: &output,
            };
            historical::get(&settings, open(&settings).await?, &project, args).await
        }
        Command::Serve(args) => {
            let project = project_for_reads(&settings)?;
            serve::serve(&settings, registry_config(&settings)?, &project, &args).await
        }
        Command::Up(args) => serve::up(args).await,
        Command::RegistryServer(args) => {
            larder_registry_server::run::run(
                registry_config(&settings)?,
                settings.auth.as_ref(),
                &settings.base_dir,
                &args,
            )
            .await
        }
        Command::OfflineServer(args) => larder_offline_server::run::run(&settings, &args).await,
        Command::Render {
            files,
            namespace,
            image,
        } => {
            let docs = load::load_larder_paths(&files)?;
            let objects: Vec<larder_model::Object> = docs.into_iter().map(|d| d.object).collect();
            let defaults = match image {
                Some(image) => larder_deploy::Defaults { image },
                None => larder_deploy::Defaults::default(),
            };
            print!(
                "{}",
                larder_deploy::render::render(&objects, &namespace, &defaults, chrono::Utc::now())?
            );
            Ok(())
        }
        Command::Teardown { yes } => {
            if !yes {
                bail!("teardown deletes every object of every project in the registry; pass --yes to confirm");
            }
            let reg = open(&settings).await?;
            let online = open_online(&settings).await?;
            larder_apply::teardown(reg.as_ref(), online.as_deref()).await?;
            if online.is_some() {
                println!("online tables removed");
            }
            println!("registry removed");
            Ok(())
        }
    }
}

fn parse_kind(s: &str) -> Result<FeastKind> {
    FeastKind::parse(s).ok_or_else(|| {
        anyhow!("unknown kind {s:?}; use entities, datasources, featureviews, featureservices, permissions, projects, streamfeatureviews or ondemandfeatureviews")
    })
}

pub(crate) fn registry_config(settings: &larder_config::Settings) -> Result<&RegistryConfig> {
    settings
        .registry
        .as_ref()
        .ok_or_else(|| anyhow!("no registry configured: set `registry` in larder.yaml, --registry or LARDER_REGISTRY"))
}

async fn open(settings: &larder_config::Settings) -> Result<Arc<dyn Registry>> {
    let cfg = registry_config(settings)?;
    larder_registry::open(cfg)
        .await
        .with_context(|| format!("cannot open {}", cfg.describe()))
}

fn project_for_reads(settings: &larder_config::Settings) -> Result<String> {
    settings
        .project
        .clone()
        .ok_or_else(|| anyhow!("no project: set `project` in larder.yaml, --project or LARDER_PROJECT"))
}

/// Validate everything before touching the registry, so bad input never
/// writes anything; then plan, and (unless `dry_run`) write.
async fn apply(settings: &larder_config::Settings, files: &[PathBuf], prune: bool, dry_run: bool) -> Result<()> {
    let docs = load::load_paths(files)?;
    let catalog = validate::validate(docs)?;
    let desired = larder_apply::Desired::from_catalog(&catalog, settings.project.as_deref())?;
    let reg = open(settings).await?;
    if dry_run {
        let changes = larder_apply::plan(reg.as_ref(), &desired, prune).await?;
        for c in &changes {
            let mark = match c.action {
                Action::Create => '+',
                Action::Update => '~',
                Action::Unchanged => '=',
                Action::Delete => '-',
            };
            println!("{mark} {:<9} {} {}", c.action.as_str(), c.kind, c.name);
        }
        println!("{}", larder_apply::Applied { changes }.summary());
        return Ok(());
    }
    // Online tables follow the registry, as with `feast apply`, when an online store is configured.
    let online = open_online(settings).await?;
    let applied = larder_apply::apply(reg.as_ref(), online.as_deref(), desired, prune).await?;
    for c in &applied.changes {
        let done = match c.action {
            Action::Create => "created",
            Action::Update => "updated",
            Action::Unchanged => "unchanged",
            Action::Delete => "deleted",
        };
        println!("{done:<9} {} {}", c.kind, c.name);
    }
    println!("{}", applied.summary());
    Ok(())
}

/// The configured online store, if any.
async fn open_online(settings: &larder_config::Settings) -> Result<Option<Arc<dyn larder_online::OnlineStore>>> {
    if settings.online_store.is_none() {
        return Ok(None);
    }
    let cfg = settings.online_store()?;
    let online = larder_online::open(&cfg)
        .await
        .with_context(|| format!("cannot open {}", cfg.describe()))?;
    Ok(Some(online))
}
