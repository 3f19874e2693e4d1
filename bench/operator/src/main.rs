//! `bench-operator`: the release `larder-operator` as a child process
//! against a real API server. N FeatureViews with their Entities and
//! DataSources are applied at once; measured: the time until all 3N+1
//! resources are Ready, the operator's registry writes, reconciles, errors,
//! CPU time and peak RSS; then a periodic resync of the unchanged objects
//! (registry writes and row versions must not move); then the deletion of
//! the namespace. Feast 0.67's `FeatureStore.apply` of the same objects is
//! measured side by side. See README.md.

mod apimetrics;
mod child;
mod cluster;
mod feast;
mod registry;
mod report;
mod workload;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, ValueEnum};
use kube::Client;
use larder_testkit::{SqlDatabase, SqlServer};
use serde_json::{Value, json};

use apimetrics::ApiServers;
use child::{Launch, LogSummary, Metrics, Operator, Usage};
use cluster::{KINDS, KindReadiness};
use report::{Align, Table, counts, mib, percentile, rate, ratio, secs, secs1};
use workload::Online;

#[derive(Parser, Debug)]
#[command(
    name = "bench-operator",
    about = "Apply N FeatureViews (+ Entities + DataSources) to a real API server and time the release larder-operator until every resource is Ready; then a resync of the unchanged objects and the namespace's deletion; side by side with Feast 0.67's FeatureStore.apply"
)]
struct Args {
    /// FeatureViews to apply, each with its own Entity and file DataSource (10 features each).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    views: u32,

    /// The FeatureStore's online store: a SQLite file in a temp dir, or
    /// Redis on 127.0.0.1:6379 (a leased logical database).
    #[arg(long, value_enum, default_value = "sqlite")]
    online: OnlineKind,

    /// The operator binary [default: $CARGO_TARGET_DIR/release/larder-operator,
    /// else target/release/larder-operator]. Build it first: `cargo build --release -p larder-operator`.
    #[arg(long)]
    operator_bin: Option<PathBuf>,

    /// Kubeconfig of the API server (`eval "$(bash e2e/kube/testenv.sh env)"` sets it).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,

    /// Server-side applies in flight at once.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    apply_concurrency: u32,

    /// The operator's --concurrency (reconciles at once per kind).
    #[arg(long, default_value_t = 8)]
    concurrency: u16,

    /// The operator's --resync-seconds; must be longer than the first pass
    /// [default: 60 + 120 per 1,000 views, at most 900].
    #[arg(long)]
    resync_seconds: Option<u64>,

    /// The FeatureStore's deletionPolicy: Delete removes the project from the
    /// registry when the namespace goes; Retain keeps its project row.
    #[arg(long, default_value = "Delete", value_parser = ["Delete", "Retain"])]
    deletion_policy: String,

    /// Create the FeatureStore and wait until it is Ready before the clock
    /// starts; then only the 3N other resources are applied at once.
    #[arg(long)]
    store_first: bool,

    /// Seconds from the first create until every resource must be Ready.
    #[arg(long, default_value_t = 600)]
    ready_timeout: u64,

    /// Seconds the namespace's deletion may take.
    #[arg(long, default_value_t = 600)]
    delete_timeout: u64,

    /// Skip the Feast comparison.
    #[arg(long)]
    no_feast: bool,

    /// Python of the Feast 0.67 venv; the comparison is skipped, with a note,
    /// when it does not exist [default: $LARDER_FEAST_PYTHON, else
    /// $HOME/.cache/larder/feast-0.67.0/bin/python]
    #[arg(long)]
    feast_python: Option<PathBuf>,

    /// Seconds the Feast script may take.
    #[arg(long, default_value_t = 3600)]
    feast_timeout: u64,

    /// sqlx URL of PostgreSQL's maintenance database; the registries are
    /// fresh databases next to it.
    #[arg(long, default_value = larder_testkit::PG_ADMIN_URL)]
    pg_admin: String,

    /// Directory for the operator's log (kept after the run) [default: the system temp dir].
    #[arg(long)]
    log_dir: Option<PathBuf>,

    /// RUST_LOG for the operator [default: its own, info].
    #[arg(long)]
    operator_rust_log: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnlineKind {
    Sqlite,
    Redis,
}

impl Args {
    fn n(&self) -> usize {
        self.views as usize
    }

    fn resync(&self) -> u64 {
        self.resync_seconds
            .unwrap_or_else(|| (60 + self.views as u64 * 120 / 1000).min(900))
            .max(1)
    }

    fn operator_bin(&self) -> PathBuf {
        if let Some(p) = &self.operator_bin {
            return p.clone();
        }
        match std::env::var_os("CARGO_TARGET_DIR") {
            Some(d) => PathBuf::from(d).join("release/larder-operator"),
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/larder-operator"),
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench-operator: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-operator: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub fn progress(msg: &str) {
    eprintln!("[bench] {msg}");
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The test API server's processes (etcd, kube-apiserver, …) from the
/// testenv's pid files, for their CPU time; empty for another cluster.
fn control_plane_pids() -> Vec<(String, u32)> {
    let dir = std::env::var_os("LARDER_KUBE_TESTENV_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/larder/kube-testenv")))
        .map(|d| d.join("run"));
    let Some(Ok(entries)) = dir.map(std::fs::read_dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, u32)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().strip_suffix(".pid")?.to_string();
            let pid = std::fs::read_to_string(e.path()).ok()?.trim().parse().ok()?;
            Path::new(&format!("/proc/{pid}")).exists().then_some((name, pid))
        })
        .collect();
    out.sort();
    out
}

fn cpu_delta(after: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .collect()
}

fn cpu_text(m: &BTreeMap<String, f64>) -> String {
    if m.is_empty() {
        return "not measured (no testenv pid files)".into();
    }
    let total: f64 = m.values().sum();
    format!(
        "{total:.1} s ({})",
        m.iter()
            .map(|(k, v)| format!("{k} {v:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A snapshot of what the benchmark tracks, at one instant.
#[derive(Debug, Clone)]
struct Snap {
    at: Instant,
    metrics: Metrics,
    op: Usage,
    control_plane: BTreeMap<String, f64>,
    bench_cpu_s: f64,
    /// The API servers' request counters (only at phase boundaries).
    api: Option<apimetrics::Counts>,
}

async fn snap(op: &Operator, cp: &[(String, u32)]) -> Result<Snap> {
    Ok(Snap {
        at: Instant::now(),
        metrics: op.metrics().await?,
        op: op.usage()?,
        control_plane: child::cpu_of(cp),
        bench_cpu_s: Usage::of(std::process::id()).map(|u| u.cpu_s).unwrap_or(0.0),
        api: None,
    })
}

/// A snapshot with the API servers' counters.
async fn snap_api(op: &Operator, cp: &[(String, u32)], api: &ApiServers) -> Result<Snap> {
    let mut s = snap(op, cp).await?;
    s.api = api.scrape().await;
    Ok(s)
}

/// `s` with the API servers' counters read now.
async fn with_api(mut s: Snap, api: &ApiServers) -> Snap {
    s.api = api.scrape().await;
    s
}

/// API requests between two snapshots, or `None` when not measured.
fn api_delta(after: &Snap, before: &Snap) -> Option<apimetrics::Counts> {
    Some(apimetrics::since(after.api.as_ref()?, before.api.as_ref()?))
}

/// The first pass: from the first create until every resource is Ready.
struct FirstPass {
    applied: cluster::Applied,
    /// Per kind: seconds from the first create until all of it was Ready.
    kind_ready_s: BTreeMap<String, f64>,
    ready_s: f64,
    /// Seconds from the first create until the FeatureStore's first reconcile began.
    store_first_reconcile_s: Option<f64>,
    polls: usize,
    list_errors: usize,
    /// Seconds from the first create until the reconciles stopped.
    quiet_s: f64,
    start: Snap,
    ready: Snap,
    quiet: Snap,
    events: BTreeMap<String, usize>,
    rows: BTreeMap<String, i64>,
}

struct Resync {
    period_s: u64,
    /// Seconds from the first create until the first resync reconcile was seen.
    started_after_s: f64,
    /// First resync reconcile seen → reconciles grew by 3N+1.
    duration_s: f64,
    /// … → the reconciles stopped again.
    quiet_s: f64,
    before: Snap,
    first: Snap,
    end: Snap,
    rows_total: usize,
    rows_rewritten: usize,
    rows_new: usize,
    api_objects: usize,
    api_rewritten: usize,
    events_before: usize,
    events_after: usize,
}

struct Deletion {
    gone_s: f64,
    before: Snap,
    after: Option<Snap>,
    rows_left: BTreeMap<String, i64>,
}

struct Stopped {
    status: String,
    took_s: f64,
    log: LogSummary,
    log_path: PathBuf,
    peak_rss: u64,
}

async fn run(args: &Args) -> Result<()> {
    let n = args.n();
    let total = 3 * n + 1;
    let kubeconfig = args.kubeconfig.clone().ok_or_else(|| {
        anyhow!("no KUBECONFIG: run `eval \"$(bash e2e/kube/testenv.sh env)\"` first (or pass --kubeconfig)")
    })?;
    let bin = args.operator_bin();
    if !bin.exists() {
        bail!(
            "operator binary {} not found: `cargo build --release -p larder-operator` (or pass --operator-bin)",
            bin.display()
        );
    }
    let client = cluster::client(&kubeconfig).await?;
    let server_version = cluster::server_version(&client).await;
    let api = ApiServers::new(&client, &kubeconfig).await;
    let cp = control_plane_pids();
    let load_start = load_average();
    progress("measuring the control plane's idle CPU for 5 s");
    let idle = Idle {
        control_plane_cores: idle_cores(&cp, Duration::from_secs(5)).await,
        terminating_namespaces: cluster::terminating_namespaces(&client).await.ok(),
        api_counters: if api.has_ext() {
            "kube-apiserver + apiextensions-apiserver"
        } else {
            "kube-apiserver"
        },
    };
    print_header(args, &bin, &kubeconfig, &server_version, &load_start, &idle);

    let tmp = tempfile::Builder::new()
        .prefix("larder-bench-operator-")
        .tempdir()
        .context("create a temp dir")?;
    let data_dir = PathBuf::from("/var/lib/larder/bench");
    let ns = larder_testkit::unique_name("bench-op-");
    let log_dir = args.log_dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&log_dir).with_context(|| format!("create {}", log_dir.display()))?;
    let log_path = log_dir.join(format!("{ns}-operator.log"));

    // Redis: a leased logical database (flushed and given back at the end).
    let redis = match args.online {
        OnlineKind::Sqlite => None,
        OnlineKind::Redis => Some(lease_redis().await?),
    };
    let online = match &redis {
        None => Online::Sqlite(tmp.path().join("online.db").display().to_string()),
        Some(_) => Online::Redis,
    };

    let db = SqlDatabase::create_on(SqlServer::Postgres, &args.pg_admin, "larder_bench_op")
        .await
        .with_context(|| format!("create the registry database at {}", args.pg_admin))?;
    progress(&format!("registry database {}", db.name()));
    cluster::create_namespace(&client, &ns).await?;
    progress(&format!("namespace {ns}"));

    let mut op: Option<Operator> = None;
    let measured = tokio::select! {
        r = measure(args, &client, &ns, &db, &online, redis.as_ref(), &bin, &kubeconfig, &log_path, &data_dir, &cp, &api, &mut op) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    if let Err(e) = &measured {
        progress(&format!("measurement failed: {e:#}; cleaning up"));
    }

    // Deletion (phase 3, and the cleanup): the operator must still run, its finalizers need it.
    let deletion = delete_namespace(args, &client, &ns, &db, op.as_ref(), &cp, &api).await;
    if let Err(e) = &deletion {
        progress(&format!("namespace deletion: {e:#}"));
    }
    let stopped = match op.take() {
        Some(o) => Some(stop_operator(o).await),
        None => None,
    };
    let stopped = stopped.transpose();
    let dropped = db.remove().await.context("drop the registry database");
    drop(redis);
    let (first, resync) = measured?;
    let deletion = deletion?;
    let stopped = stopped?.ok_or_else(|| anyhow!("the operator was never started"))?;
    dropped?;

    let feast = run_feast(args, tmp.path(), &data_dir).await?;

    print_results(args, total, &first, &resync, &deletion, &stopped, feast.as_ref());
    let load_end = load_average();
    println!();
    println!("load average: {load_start} at the start, {load_end} at the end");
    println!(
        "{}",
        json_line(
            args,
            &ns,
            &server_version,
            &first,
            &resync,
            &deletion,
            &stopped,
            feast.as_ref(),
            &load_start,
            &load_end,
            &idle
        )
    );
    Ok(())
}

async fn lease_redis() -> Result<larder_testkit::RedisDb> {
    // The testkit lease panics when Redis does not answer: probe first, and
    // keep a panic inside the blocking task.
    tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(larder_testkit::REDIS_ADDR),
    )
    .await
    .map_err(|_| anyhow!("Redis at {} does not answer", larder_testkit::REDIS_ADDR))?
    .with_context(|| format!("connect to Redis at {}", larder_testkit::REDIS_ADDR))?;
    tokio::task::spawn_blocking(larder_testkit::RedisDb::lease)
        .await
        .map_err(|e| anyhow!("lease a Redis logical database: {e}"))
}

/// What the cluster does when the benchmark does nothing.
struct Idle {
    control_plane_cores: Option<f64>,
    terminating_namespaces: Option<usize>,
    /// Whose request counters the API rows sum.
    api_counters: &'static str,
}

async fn idle_cores(cp: &[(String, u32)], over: Duration) -> Option<f64> {
    if cp.is_empty() {
        return None;
    }
    let before: f64 = child::cpu_of(cp).values().sum();
    tokio::time::sleep(over).await;
    let after: f64 = child::cpu_of(cp).values().sum();
    Some((after - before) / over.as_secs_f64())
}

fn print_header(args: &Args, bin: &Path, kubeconfig: &Path, server: &str, load: &str, idle: &Idle) {
    let argv: Vec<String> = std::env::args().collect();
    let n = args.n();
    println!("Larder operator benchmark");
    println!("  command:   {}", argv.join(" "));
    println!(
        "  workload:  {n} FeatureViews x 10 features, each with its own Entity and file DataSource, + 1 FeatureStore = {} resources (project {:?})",
        3 * n + 1,
        workload::PROJECT
    );
    println!(
        "  operator:  {} --concurrency {} --resync-seconds {} (built {})",
        bin.display(),
        args.concurrency,
        args.resync(),
        modified(bin)
    );
    println!(
        "  cluster:   {} ({}); applies: server-side, {} in flight",
        server,
        kubeconfig.display(),
        args.apply_concurrency
    );
    println!(
        "  stores:    PostgreSQL registry (fresh database), {} online store, deletionPolicy {}",
        match args.online {
            OnlineKind::Sqlite => "SQLite",
            OnlineKind::Redis => "Redis",
        },
        args.deletion_policy
    );
    println!(
        "  machine:   {} CPUs, load average {load}",
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );
    println!(
        "  idle:      control plane {} CPU before the run; {} namespaces Terminating",
        idle.control_plane_cores
            .map_or("not measured".into(), |c| format!("{c:.2} cores")),
        idle.terminating_namespaces.map_or("?".into(), |n| n.to_string())
    );
    println!("  API rows:  apiserver_request_total of {}", idle.api_counters);
    println!();
}

fn modified(p: &Path) -> String {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| {
            let ago = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|now| now.as_secs().saturating_sub(d.as_secs()))
                .unwrap_or(0);
            format!("{} min ago", ago / 60)
        })
        .unwrap_or_else(|| "?".into())
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    args: &Args,
    client: &Client,
    ns: &str,
    db: &SqlDatabase,
    online: &Online,
    redis: Option<&larder_testkit::RedisDb>,
    bin: &Path,
    kubeconfig: &Path,
    log_path: &Path,
    data_dir: &Path,
    cp: &[(String, u32)],
    api: &ApiServers,
    op_slot: &mut Option<Operator>,
) -> Result<(FirstPass, Resync)> {
    let n = args.n();
    let total = 3 * n + 1;
    cluster::apply(
        client,
        ns,
        &workload::secret(workload::REGISTRY_SECRET, "url", db.url()),
    )
    .await?;
    if let Some(r) = redis {
        cluster::apply(
            client,
            ns,
            &workload::secret(workload::ONLINE_SECRET, "connectionString", &r.connection_string()),
        )
        .await?;
    }
    let pool = registry::connect(db.url()).await?;

    let resync = args.resync();
    let mut op = Operator::start(&Launch {
        bin,
        kubeconfig,
        namespace: ns,
        resync_seconds: resync,
        concurrency: args.concurrency,
        log: log_path.to_path_buf(),
        rust_log: args.operator_rust_log.as_deref(),
    })?;
    progress(&format!(
        "operator pid {} (metrics on {}, log {})",
        op.pid,
        op.metrics_addr,
        log_path.display()
    ));
    let ready_after = op.wait_ready(Duration::from_secs(60)).await;
    *op_slot = Some(op);
    let Some(op) = op_slot.as_mut() else {
        bail!("no operator")
    };
    progress(&format!("operator ready after {:.1} s", ready_after?.as_secs_f64()));

    // 1. Apply everything at once; poll readiness meanwhile.
    let mut objects = workload::objects(n, data_dir);
    let store = workload::store(online, &args.deletion_policy);
    if args.store_first {
        let t = Instant::now();
        cluster::apply(client, ns, &store).await?;
        loop {
            if cluster::readiness(client, ns, "FeatureStore", false).await?.ready == 1 {
                break;
            }
            if t.elapsed() > Duration::from_secs(120) {
                bail!("the FeatureStore was not Ready within 120 s (--store-first)");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        progress(&format!(
            "FeatureStore Ready after {:.2} s (--store-first); the clock starts now",
            t.elapsed().as_secs_f64()
        ));
        // Its reconciles so far belong to no phase: let them finish.
        wait_quiet(
            op,
            cp,
            Duration::from_secs(2),
            Some(Instant::now() + Duration::from_secs(60)),
        )
        .await?;
    } else {
        objects.insert(0, store);
    }
    let applies = objects.len();
    let start = snap_api(op, cp, api).await?;
    progress(&format!(
        "applying {applies} resources ({} in flight) and waiting until all {total} are Ready",
        args.apply_concurrency
    ));
    let expected: Vec<(&str, usize)> = KINDS
        .iter()
        .map(|k| (*k, if *k == "FeatureStore" { 1 } else { n }))
        .collect();
    let (applied, ready) = tokio::try_join!(
        cluster::apply_all(
            client,
            ns,
            objects,
            args.apply_concurrency as usize,
            Duration::from_secs(60)
        ),
        poll_ready(
            client,
            ns,
            &expected,
            start.at,
            Duration::from_secs(args.ready_timeout),
            op,
            start.metrics.reconciles.get("FeatureStore").copied().unwrap_or(0)
        ),
    )?;
    let ready_snap = snap_api(op, cp, api).await?;
    progress(&format!(
        "all {total} Ready after {:.2} s (apply phase {:.2} s); waiting for the reconciles to stop",
        ready.ready_s,
        applied.wall.as_secs_f64()
    ));

    // The first pass ends when the reconciles stop; the resync must come later.
    let resync_at = start.at + Duration::from_secs(resync);
    let quiet = wait_quiet(op, cp, Duration::from_secs(3), resync_at.checked_sub(Duration::from_secs(1)))
        .await
        .with_context(|| {
            format!("the first pass did not end before the first resync could start ({resync} s after the first create); rerun with a longer --resync-seconds")
        })?;
    let quiet = with_api(quiet, api).await;
    let quiet_s = quiet.at.duration_since(start.at).as_secs_f64();
    let events = cluster::events(client, ns).await.unwrap_or_default();
    let rows = registry::project_rows(&pool, workload::PROJECT).await?;
    let first = FirstPass {
        applied,
        kind_ready_s: ready.kind_ready_s,
        ready_s: ready.ready_s,
        store_first_reconcile_s: ready.store_first_reconcile_s,
        polls: ready.polls,
        list_errors: ready.list_errors,
        quiet_s,
        start,
        ready: ready_snap,
        quiet,
        events,
        rows,
    };
    progress(&format!(
        "first pass over after {quiet_s:.1} s: {} reconciles, {} registry writes, {} errors",
        first.quiet.metrics.total_reconciles(),
        first.quiet.metrics.total_writes(),
        first.quiet.metrics.total_errors()
    ));

    // 2. The resync of the unchanged objects.
    let rows_before = registry::row_versions(&pool).await?;
    let rv_before = resource_versions(client, ns).await?;
    let events_before = first.events.values().sum();
    let before = snap_api(op, cp, api).await?;
    let base = before.metrics.total_reconciles();
    let want = base + total as u64;
    progress(&format!(
        "waiting for the resync (period {resync} s, {:.0} s from now) to reconcile all {total} resources again",
        resync_at.saturating_duration_since(Instant::now()).as_secs_f64()
    ));
    let deadline = resync_at + Duration::from_secs_f64(first.quiet_s) + Duration::from_secs(300);
    let mut first_seen: Option<Snap> = None;
    let mut last_report = Instant::now();
    let done = loop {
        let s = snap(op, cp).await?;
        let got = s.metrics.total_reconciles();
        if first_seen.is_none() && got > base {
            first_seen = Some(s.clone());
        }
        if got >= want {
            break s;
        }
        if !op.alive() {
            bail!("the operator exited during the resync wait; see {}", log_path.display());
        }
        if Instant::now() > deadline {
            bail!(
                "the resync reconciled {} of {total} resources within {:.0} s of the first create (period {resync} s)",
                got - base,
                deadline.duration_since(first.start.at).as_secs_f64()
            );
        }
        if last_report.elapsed() >= Duration::from_secs(5) && first_seen.is_some() {
            progress(&format!("resync: {}/{total} reconciled", got - base));
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let first_resync = first_seen.unwrap_or_else(|| done.clone());
    let end = wait_quiet(
        op,
        cp,
        Duration::from_secs(3),
        Some(Instant::now() + Duration::from_secs(120)),
    )
    .await?;
    let end = with_api(end, api).await;
    let rows_after = registry::row_versions(&pool).await?;
    let rv_after = resource_versions(client, ns).await?;
    let events_after = cluster::events(client, ns).await.map(|e| e.values().sum()).unwrap_or(0);
    let (rows_rewritten, rows_new) = registry::changed_rows(&rows_before, &rows_after);
    let api_rewritten = rv_before.iter().filter(|(k, v)| rv_after.get(*k) != Some(*v)).count();
    let resync = Resync {
        period_s: resync,
        started_after_s: first_resync.at.duration_since(first.start.at).as_secs_f64(),
        duration_s: done.at.duration_since(first_resync.at).as_secs_f64(),
        quiet_s: end.at.duration_since(first_resync.at).as_secs_f64(),
        before,
        first: first_resync,
        end,
        rows_total: rows_before.len(),
        rows_rewritten,
        rows_new,
        api_objects: rv_before.len(),
        api_rewritten,
        events_before,
        events_after,
    };
    let d = resync.end.metrics.since(&resync.before.metrics);
    progress(&format!(
        "resync over: {} reconciles in {:.1} s, {} registry writes, {rows_rewritten} registry rows rewritten, {api_rewritten} API objects rewritten",
        d.total_reconciles(),
        resync.duration_s,
        d.total_writes()
    ));
    pool.close().await;
    Ok((first, resync))
}

struct ReadyReport {
    kind_ready_s: BTreeMap<String, f64>,
    ready_s: f64,
    store_first_reconcile_s: Option<f64>,
    polls: usize,
    list_errors: usize,
}

/// List every kind not yet all Ready each 250 ms, until all of them are
/// (confirmed by one more list of every kind).
async fn poll_ready(
    client: &Client,
    ns: &str,
    expected: &[(&str, usize)],
    start: Instant,
    timeout: Duration,
    op: &Operator,
    store_base: u64,
) -> Result<ReadyReport> {
    let mut done: BTreeMap<String, f64> = BTreeMap::new();
    let mut last: BTreeMap<String, KindReadiness> = BTreeMap::new();
    let mut polls = 0;
    let mut list_errors = 0;
    let mut metric_errors = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_report = Instant::now();
    let mut store_first_reconcile_s: Option<f64> = None;
    loop {
        tick.tick().await;
        polls += 1;
        for (kind, want) in expected {
            if done.contains_key(*kind) {
                continue;
            }
            match cluster::readiness(client, ns, kind, true).await {
                Ok(r) => {
                    if r.total == *want && r.ready == *want {
                        done.insert(kind.to_string(), start.elapsed().as_secs_f64());
                    }
                    last.insert(kind.to_string(), r);
                }
                Err(e) => {
                    list_errors += 1;
                    progress(&format!("list error (retrying): {e:#}"));
                }
            }
        }
        if done.len() == expected.len() {
            let ready_s = done.values().copied().fold(0.0, f64::max);
            // Confirm: every kind still all Ready.
            let mut regressed = Vec::new();
            for (kind, want) in expected {
                let r = cluster::readiness(client, ns, kind, false).await?;
                if r.ready != *want || r.total != *want {
                    regressed.push(kind.to_string());
                }
            }
            if regressed.is_empty() {
                return Ok(ReadyReport {
                    kind_ready_s: done,
                    ready_s,
                    store_first_reconcile_s,
                    polls,
                    list_errors,
                });
            }
            progress(&format!("not Ready any more: {}", regressed.join(", ")));
            for k in regressed {
                done.remove(&k);
            }
        }
        let status = || {
            expected
                .iter()
                .map(|(k, want)| {
                    let r = last.get(*k).cloned().unwrap_or_default();
                    let waiting = if r.waiting.is_empty() {
                        String::new()
                    } else {
                        format!(" (waiting: {})", counts(&r.waiting))
                    };
                    format!("{k} {}/{want}{waiting}", r.ready)
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let metrics = match op.metrics().await {
            Ok(m) => {
                metric_errors = 0;
                if store_first_reconcile_s.is_none()
                    && m.reconciles.get("FeatureStore").is_some_and(|n| *n > store_base)
                {
                    store_first_reconcile_s = Some(start.elapsed().as_secs_f64());
                }
                Some(m)
            }
            Err(e) => {
                metric_errors += 1;
                if metric_errors >= 20 {
                    bail!(
                        "the operator's /metrics stopped answering ({e:#}); see {}",
                        op.log.display()
                    );
                }
                None
            }
        };
        if last_report.elapsed() >= Duration::from_secs(2) {
            let m = metrics
                .map(|m| {
                    format!(
                        "; reconciles {}, writes {}, errors {}",
                        m.total_reconciles(),
                        m.total_writes(),
                        m.total_errors()
                    )
                })
                .unwrap_or_default();
            progress(&format!(
                "{:.1} s: Ready {}{m}",
                start.elapsed().as_secs_f64(),
                status()
            ));
            last_report = Instant::now();
        }
        if start.elapsed() > timeout {
            bail!(
                "not every resource was Ready within {} s of the first create: {}",
                timeout.as_secs(),
                status()
            );
        }
    }
}

/// Wait until the reconciles counter has not moved for `quiet`; the
/// snapshot taken when it last moved. Fails at `deadline`.
async fn wait_quiet(op: &Operator, cp: &[(String, u32)], quiet: Duration, deadline: Option<Instant>) -> Result<Snap> {
    let mut last = snap(op, cp).await?;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let s = snap(op, cp).await?;
        if s.metrics.total_reconciles() != last.metrics.total_reconciles() {
            last = s;
        } else if s.at.duration_since(last.at) >= quiet {
            return Ok(last);
        }
        if let Some(d) = deadline
            && Instant::now() > d
        {
            bail!(
                "the operator kept reconciling ({} reconciles so far)",
                last.metrics.total_reconciles()
            );
        }
    }
}

/// `kind/name` → resourceVersion of every resource the benchmark created.
async fn resource_versions(client: &Client, ns: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for kind in KINDS {
        let list =
            kube::Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), ns, &cluster::api_resource(kind))
                .list(&Default::default())
                .await
                .with_context(|| format!("list {kind} in {ns}"))?;
        for o in list.items {
            out.insert(
                format!("{kind}/{}", o.metadata.name.unwrap_or_default()),
                o.metadata.resource_version.unwrap_or_default(),
            );
        }
    }
    Ok(out)
}

async fn delete_namespace(
    args: &Args,
    client: &Client,
    ns: &str,
    db: &SqlDatabase,
    op: Option<&Operator>,
    cp: &[(String, u32)],
    api: &ApiServers,
) -> Result<Deletion> {
    let before = match op {
        Some(op) => snap_api(op, cp, api).await.ok(),
        None => None,
    };
    let started = Instant::now();
    progress(&format!("deleting namespace {ns} (the operator still runs)"));
    cluster::delete_namespace(client, ns).await?;
    let gone = cluster::wait_namespace_gone(client, ns, Duration::from_secs(args.delete_timeout), started).await?;
    let after = match op {
        Some(op) => snap_api(op, cp, api).await.ok(),
        None => None,
    };
    progress(&format!("namespace gone after {:.1} s", gone.as_secs_f64()));
    let pool = registry::connect(db.url()).await?;
    let rows_left = registry::project_rows(&pool, workload::PROJECT).await?;
    pool.close().await;
    let before = before.ok_or_else(|| anyhow!("the operator was not running when the namespace was deleted"))?;
    Ok(Deletion {
        gone_s: gone.as_secs_f64(),
        before,
        after,
        rows_left,
    })
}

async fn stop_operator(op: Operator) -> Result<Stopped> {
    let peak_rss = op.usage().map(|u| u.peak_rss).unwrap_or(0);
    let log_path = op.log.clone();
    let (status, took) = op.stop(Duration::from_secs(30)).await?;
    progress(&format!("operator stopped: {status} after {:.1} s", took.as_secs_f64()));
    Ok(Stopped {
        status,
        took_s: took.as_secs_f64(),
        log: child::summarize_log(&log_path),
        log_path,
        peak_rss,
    })
}

async fn run_feast(args: &Args, tmp: &Path, data_dir: &Path) -> Result<Option<feast::FeastReport>> {
    if args.no_feast {
        progress("Feast comparison skipped (--no-feast)");
        return Ok(None);
    }
    let Some(python) = args.feast_python.clone().or_else(feast::default_python) else {
        progress("Feast comparison skipped: no HOME to find the Feast venv");
        return Ok(None);
    };
    if !python.exists() {
        progress(&format!(
            "Feast comparison skipped: no Feast venv python at {} (pass --feast-python)",
            python.display()
        ));
        return Ok(None);
    }
    let redis = match args.online {
        OnlineKind::Sqlite => None,
        OnlineKind::Redis => Some(lease_redis().await?),
    };
    let db = SqlDatabase::create_on(SqlServer::Postgres, &args.pg_admin, "larder_bench_op_feast")
        .await
        .with_context(|| format!("create Feast's registry database at {}", args.pg_admin))?;
    let dir = tmp.join("feast-repo");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    progress(&format!(
        "running {} with {} (FeatureStore.apply of the same {} objects)",
        feast::script_path().display(),
        python.display(),
        3 * args.n()
    ));
    let url = db.feast_url();
    let conn = redis.as_ref().map(|r| r.connection_string());
    let report = feast::run(&feast::FeastRun {
        python: &python,
        views: args.n(),
        registry_url: &url,
        dir: &dir,
        data_dir,
        redis: conn.as_deref(),
        timeout: Duration::from_secs(args.feast_timeout),
    })
    .await;
    db.remove().await.context("drop Feast's registry database")?;
    Ok(Some(report?))
}

fn per_kind(m: &BTreeMap<String, u64>) -> String {
    let total: u64 = m.values().sum();
    if m.is_empty() {
        return "0".into();
    }
    format!("{total} ({})", counts(m))
}

fn mean_durations(m: &Metrics) -> String {
    if m.duration.is_empty() {
        return "-".into();
    }
    m.duration
        .iter()
        .map(|(k, (s, c))| format!("{k} {:.1} ms", s / (*c).max(1) as f64 * 1e3))
        .collect::<Vec<_>>()
        .join(", ")
}

fn cores(cpu_s: f64, wall_s: f64) -> String {
    if wall_s > 0.0 {
        format!("{cpu_s:.2} s ({:.2} cores avg)", cpu_s / wall_s)
    } else {
        format!("{cpu_s:.2} s")
    }
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

fn print_results(
    args: &Args,
    total: usize,
    first: &FirstPass,
    resync: &Resync,
    deletion: &Deletion,
    stopped: &Stopped,
    feast: Option<&feast::FeastReport>,
) {
    let n = args.n();
    let fp = first.quiet.metrics.since(&first.start.metrics);
    let to_ready = first.ready.metrics.since(&first.start.metrics);
    let lat = &first.applied.latencies;

    if args.store_first {
        println!(
            "1. First pass: the FeatureStore created and Ready first (--store-first); then {} resources applied at once, until every one is Ready=True",
            total - 1
        );
    } else {
        println!("1. First pass: {total} resources applied at once, until every one is Ready=True");
    }
    let applies = first.applied.latencies.len();
    let mut t = Table::new(&[("figure", Align::Left), ("value", Align::Right), ("note", Align::Left)]);
    let mut row = |a: &str, b: String, c: String| t.row(vec![a.to_string(), b, c]);
    row(
        "apply phase (s)",
        secs(first.applied.wall.as_secs_f64()),
        format!(
            "{applies} server-side applies, {} in flight: {}; request p50 {:.0} ms, p99 {:.0} ms",
            args.apply_concurrency,
            rate(applies, first.applied.wall.as_secs_f64()),
            percentile(lat, 50.0) * 1e3,
            percentile(lat, 99.0) * 1e3
        ),
    );
    for kind in KINDS {
        row(
            &format!("  {} all Ready (s)", cluster::plural_title(kind)),
            first.kind_ready_s.get(kind).map_or("-".into(), |s| secs(*s)),
            String::new(),
        );
    }
    row(
        &format!("all {total} Ready (s)"),
        secs(first.ready_s),
        format!(
            "target <= 30 s: {}; {} list polls, {} list errors",
            met(first.ready_s <= 30.0),
            first.polls,
            first.list_errors
        ),
    );
    row(
        "FeatureStore's first reconcile at (s)",
        first.store_first_reconcile_s.map_or("-".into(), secs),
        "from the first create (seen on /metrics, 250 ms polls)".into(),
    );
    row(
        "reconciles stopped after (s)",
        secs(first.quiet_s),
        "no reconcile for 3 s".into(),
    );
    row(
        "reconciles",
        to_ready.total_reconciles().to_string(),
        format!(
            "until Ready ({:.1} per resource); until quiet: {}",
            to_ready.total_reconciles() as f64 / total as f64,
            per_kind(&fp.reconciles)
        ),
    );
    row(
        "registry writes",
        to_ready.total_writes().to_string(),
        format!("until Ready; until quiet: {}", per_kind(&fp.writes)),
    );
    row(
        "reconcile errors",
        fp.total_errors().to_string(),
        if fp.errors.is_empty() {
            String::new()
        } else {
            counts(&fp.errors)
        },
    );
    row("mean reconcile duration", String::new(), mean_durations(&fp));
    let ready_wall = first.ready.at.duration_since(first.start.at).as_secs_f64();
    row(
        "operator CPU until Ready",
        format!("{:.2}", first.ready.op.cpu_s - first.start.op.cpu_s),
        cores(first.ready.op.cpu_s - first.start.op.cpu_s, ready_wall),
    );
    let quiet_wall = first.quiet.at.duration_since(first.start.at).as_secs_f64();
    row(
        "operator CPU until quiet",
        format!("{:.2}", first.quiet.op.cpu_s - first.start.op.cpu_s),
        format!("{} threads", first.quiet.op.threads),
    );
    row(
        "operator peak RSS (VmHWM)",
        mib(first.quiet.op.peak_rss),
        format!("RSS now {}", mib(first.quiet.op.rss)),
    );
    row(
        "control plane CPU until quiet",
        String::new(),
        cpu_text(&cpu_delta(&first.quiet.control_plane, &first.start.control_plane)),
    );
    row(
        "benchmark's own CPU until quiet",
        format!("{:.2}", first.quiet.bench_cpu_s - first.start.bench_cpu_s),
        format!("over {quiet_wall:.1} s (applies + polls)"),
    );
    row(
        "events in the namespace",
        first.events.values().sum::<usize>().to_string(),
        counts(&first.events),
    );
    api_row(&mut row, api_delta(&first.quiet, &first.start));
    row(
        "registry rows of the project",
        first.rows.values().sum::<i64>().to_string(),
        counts(&first.rows),
    );
    println!("{}", t.render());

    println!(
        "2. Resync of the unchanged objects (period {} s; reconciles grow by >= {total})",
        resync.period_s
    );
    let d = resync.end.metrics.since(&resync.before.metrics);
    let mut t = Table::new(&[("figure", Align::Left), ("value", Align::Right), ("note", Align::Left)]);
    let mut row = |a: &str, b: String, c: String| t.row(vec![a.to_string(), b, c]);
    row(
        "first resync reconcile after (s)",
        secs1(resync.started_after_s),
        "from the first create".into(),
    );
    row(
        &format!("resync duration: +{total} reconciles (s)"),
        secs(resync.duration_s),
        format!("until quiet again: {:.3} s", resync.quiet_s),
    );
    row("reconciles", d.total_reconciles().to_string(), per_kind(&d.reconciles));
    row(
        "registry writes",
        d.total_writes().to_string(),
        format!("target 0: {}; {}", met(d.total_writes() == 0), per_kind(&d.writes)),
    );
    row(
        "registry rows rewritten (ctid/xmin)",
        resync.rows_rewritten.to_string(),
        format!(
            "of {} rows in {} tables; new rows {}; unchanged: {}",
            resync.rows_total,
            larder_registry::sql::ALL_TABLES.len(),
            resync.rows_new,
            resync.rows_rewritten == 0 && resync.rows_new == 0
        ),
    );
    row(
        "API objects rewritten (resourceVersion)",
        resync.api_rewritten.to_string(),
        format!("of {}", resync.api_objects),
    );
    api_row(&mut row, api_delta(&resync.end, &resync.before));
    row(
        "events during the resync",
        resync.events_after.saturating_sub(resync.events_before).to_string(),
        String::new(),
    );
    row(
        "reconcile errors",
        d.total_errors().to_string(),
        if d.errors.is_empty() {
            String::new()
        } else {
            counts(&d.errors)
        },
    );
    row("mean reconcile duration", String::new(), mean_durations(&d));
    let cpu = resync.end.op.cpu_s - resync.first.op.cpu_s;
    row(
        "operator CPU during the resync",
        format!("{cpu:.2}"),
        cores(cpu, resync.end.at.duration_since(resync.first.at).as_secs_f64()),
    );
    let idle_wall = resync.first.at.duration_since(resync.before.at).as_secs_f64();
    row(
        "operator CPU while idle",
        format!("{:.2}", resync.first.op.cpu_s - resync.before.op.cpu_s),
        format!("over the {idle_wall:.0} s between the passes"),
    );
    row(
        "control plane CPU during the resync",
        String::new(),
        cpu_text(&cpu_delta(&resync.end.control_plane, &resync.first.control_plane)),
    );
    println!("{}", t.render());

    println!("3. Deletion of the namespace (operator running; finalizers remove registry objects and tables)");
    let mut t = Table::new(&[("figure", Align::Left), ("value", Align::Right), ("note", Align::Left)]);
    let mut row = |a: &str, b: String, c: String| t.row(vec![a.to_string(), b, c]);
    row(
        "namespace gone after (s)",
        secs(deletion.gone_s),
        format!("deletionPolicy {}", args.deletion_policy),
    );
    if let Some(after) = &deletion.after {
        let d = after.metrics.since(&deletion.before.metrics);
        row(
            "registry writes",
            d.total_writes().to_string(),
            format!("deletes, and any re-creations: {}", per_kind(&d.writes)),
        );
        row("reconciles", d.total_reconciles().to_string(), per_kind(&d.reconciles));
        row(
            "reconcile errors",
            d.total_errors().to_string(),
            if d.errors.is_empty() {
                String::new()
            } else {
                counts(&d.errors)
            },
        );
        row(
            "operator CPU",
            format!("{:.2}", after.op.cpu_s - deletion.before.op.cpu_s),
            String::new(),
        );
        api_row(&mut row, api_delta(after, &deletion.before));
    }
    row(
        "registry rows of the project left",
        deletion.rows_left.values().sum::<i64>().to_string(),
        counts(&deletion.rows_left),
    );
    row("operator stop (SIGTERM)", secs(stopped.took_s), stopped.status.clone());
    row("operator peak RSS, whole run", mib(stopped.peak_rss), String::new());
    println!("{}", t.render());

    println!(
        "4. The operator's log ({}): {} lines; {}",
        stopped.log_path.display(),
        stopped.log.lines,
        counts(&stopped.log.by_level)
    );
    if stopped.log.problems.is_empty() {
        println!("  no warnings or errors");
    }
    for (g, c, example) in stopped.log.problems.iter().take(8) {
        println!("  {c:>6}  {g}");
        println!("          e.g. {}", truncate(example, 220));
    }
    println!();

    match feast {
        None => println!("5. Feast comparison: skipped"),
        Some(f) => {
            println!(
                "5. Larder operator vs Feast {} (`feast apply` = FeatureStore.apply; same {n} entities + {n} FileSources + {n} FeatureViews, fresh PostgreSQL registries)",
                f.feast_version
            );
            let mut t = Table::new(&[
                ("figure", Align::Left),
                ("Larder operator", Align::Right),
                ("Feast 0.67", Align::Right),
                ("ratio", Align::Right),
            ]);
            let fp_cpu = first.ready.op.cpu_s - first.start.op.cpu_s;
            t.row(vec![
                "apply all, until in the registry (s)".into(),
                secs(first.ready_s),
                secs(f.apply_s),
                ratio(first.ready_s, f.apply_s),
            ]);
            t.row(vec![
                "CPU of the applying process (s)".into(),
                secs(fp_cpu),
                secs(f.apply_cpu_s),
                ratio(fp_cpu, f.apply_cpu_s),
            ]);
            let rcpu = resync.end.op.cpu_s - resync.first.op.cpu_s;
            t.row(vec![
                "re-apply of unchanged objects (s)".into(),
                format!("{} (resync)", secs(resync.duration_s)),
                secs(f.reapply_s),
                "-".into(),
            ]);
            t.row(vec![
                "  CPU (s)".into(),
                secs(rcpu),
                secs(f.reapply_cpu_s),
                ratio(rcpu, f.reapply_cpu_s),
            ]);
            t.row(vec![
                "  registry rows rewritten".into(),
                resync.rows_rewritten.to_string(),
                f.reapply_rows_rewritten.to_string(),
                "-".into(),
            ]);
            t.row(vec![
                "registry rows after apply".into(),
                first.rows.values().sum::<i64>().to_string(),
                f.registry_rows.values().sum::<i64>().to_string(),
                "-".into(),
            ]);
            t.row(vec![
                "peak RSS".into(),
                mib(stopped.peak_rss),
                mib(f.peak_rss_bytes),
                "-".into(),
            ]);
            println!("{}", t.render());
            println!("  Larder rows: {}", counts(&first.rows));
            println!("  Feast rows:  {}", counts(&f.registry_rows));
            println!(
                "  Feast also spent {:.1} s importing feast, {:.2} s building the Python objects and {:.2} s in FeatureStore() (registry tables); `feast apply` pays these too. Online tables made: {}.",
                f.import_s,
                f.build_s,
                f.init_s,
                f.online_tables.map_or("-".into(), |t| t.to_string())
            );
            println!(
                "  The Larder figure runs from the first create to the last Ready condition (API server round trips, watches, status writes included); Feast's is one in-process call."
            );
        }
    }
}

/// The API servers' per-object writes (and Secret reads) between two snapshots.
fn api_row(row: &mut impl FnMut(&str, String, String), d: Option<apimetrics::Counts>) {
    match d {
        Some(d) => row(
            "API requests (server-wide)",
            d.values().sum::<u64>().to_string(),
            counts(&d),
        ),
        None => row("API requests (server-wide)", "-".into(), "not measured".into()),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

fn snap_json(s: &Snap, since: &Snap) -> Value {
    let m = s.metrics.since(&since.metrics);
    json!({
        "reconciles": m.reconciles,
        "registry_writes": m.writes,
        "errors": m.errors,
        "operator_cpu_s": s.op.cpu_s - since.op.cpu_s,
        "operator_peak_rss_bytes": s.op.peak_rss,
        "control_plane_cpu_s": cpu_delta(&s.control_plane, &since.control_plane),
        "api_requests": api_delta(s, since),
        "wall_s": s.at.duration_since(since.at).as_secs_f64(),
    })
}

#[allow(clippy::too_many_arguments)]
fn json_line(
    args: &Args,
    ns: &str,
    server: &str,
    first: &FirstPass,
    resync: &Resync,
    deletion: &Deletion,
    stopped: &Stopped,
    feast: Option<&feast::FeastReport>,
    load_start: &str,
    load_end: &str,
    idle: &Idle,
) -> String {
    let lat = &first.applied.latencies;
    let v = json!({
        "bench": "operator",
        "views": args.n(),
        "resources": 3 * args.n() + 1,
        "namespace": ns,
        "api_server": server,
        "online": format!("{:?}", args.online).to_lowercase(),
        "apply_concurrency": args.apply_concurrency,
        "store_first": args.store_first,
        "operator_concurrency": args.concurrency,
        "resync_seconds": resync.period_s,
        "load_average_start": load_start,
        "load_average_end": load_end,
        "idle_control_plane_cores": idle.control_plane_cores,
        "terminating_namespaces": idle.terminating_namespaces,
        "first_pass": {
            "apply_s": first.applied.wall.as_secs_f64(),
            "apply_request_p50_s": percentile(lat, 50.0),
            "apply_request_p99_s": percentile(lat, 99.0),
            "kind_ready_s": first.kind_ready_s,
            "ready_s": first.ready_s,
            "store_first_reconcile_s": first.store_first_reconcile_s,
            "quiet_s": first.quiet_s,
            "list_polls": first.polls,
            "list_errors": first.list_errors,
            "until_ready": snap_json(&first.ready, &first.start),
            "until_quiet": snap_json(&first.quiet, &first.start),
            "events": first.events,
            "registry_rows": first.rows,
        },
        "resync": {
            "started_after_s": resync.started_after_s,
            "duration_s": resync.duration_s,
            "quiet_s": resync.quiet_s,
            "window": snap_json(&resync.end, &resync.first),
            "since_first_pass": snap_json(&resync.end, &resync.before),
            "registry_rows": resync.rows_total,
            "registry_rows_rewritten": resync.rows_rewritten,
            "registry_rows_new": resync.rows_new,
            "api_objects": resync.api_objects,
            "api_objects_rewritten": resync.api_rewritten,
            "events": resync.events_after.saturating_sub(resync.events_before),
        },
        "deletion": {
            "namespace_gone_s": deletion.gone_s,
            "window": deletion.after.as_ref().map(|a| snap_json(a, &deletion.before)),
            "registry_rows_left": deletion.rows_left,
        },
        "operator": {
            "stop": stopped.status,
            "stop_s": stopped.took_s,
            "peak_rss_bytes": stopped.peak_rss,
            "log": stopped.log_path.display().to_string(),
            "log_lines": stopped.log.lines,
            "log_levels": stopped.log.by_level,
            "log_problems": stopped.log.problems.iter().map(|(g, c, _)| json!({"group": g, "count": c})).collect::<Vec<_>>(),
        },
        "feast": feast,
    });
    v.to_string()
}
