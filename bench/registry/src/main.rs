//! `bench-registry`: how fast Larder's registry backends apply, re-apply and
//! list N feature views, and the same figures for Feast 0.67's own SQL
//! registry (through `feast_registry_bench.py`) side by side. See README.md.

mod db;
mod feast;
mod objects;
mod report;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use clap::{Parser, ValueEnum};
use larder_model::feast::{FeastKind, FeastObject};
use larder_registry::cache::CachedRegistry;
use larder_registry::file::FileRegistry;
use larder_registry::sql::SqlRegistry;
use larder_registry::{ApplyOutcome, Registry};

use db::{Admin, Server};
use feast::{FeastFigures, FeastOptions, FeastReport, FeastTargets};
use report::{Align, Stats, Table, micros, rate, ratio, secs, summarize};

const PROJECT: &str = "bench";
/// Cache TTL on both sides: long enough never to expire during a run.
const CACHE_TTL_S: u64 = 3600;

#[derive(Parser, Debug)]
#[command(
    name = "bench-registry",
    about = "Apply, re-apply and list N feature views on Larder's registry backends, side by side with Feast 0.67's SQL registry"
)]
struct Args {
    /// Feature views to apply (10 features and one entity each).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    views: u32,

    /// Backends to measure, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "postgres,sqlite,mysql,file"
    )]
    backends: Vec<Backend>,

    /// Timed uncached `list` calls per backend (after one warm-up call).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    uncached_iters: u32,

    /// Timed cached `list` calls per backend (after warming the cache).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    cached_iters: u32,

    /// Python of the Feast 0.67 venv; the comparison is skipped, with a note,
    /// when it does not exist [default: $HOME/.cache/larder/feast-0.67.0/bin/python]
    #[arg(long)]
    feast_python: Option<PathBuf>,

    /// Skip the Feast comparison.
    #[arg(long)]
    no_feast: bool,

    /// Seconds each Feast list loop may run before it stops early (at least 5
    /// calls); Feast's uncached list of 1,000 views takes about a second.
    #[arg(long, default_value_t = 30.0)]
    feast_time_budget: f64,

    /// Directory for the SQLite and file registries (a fresh temporary
    /// directory is made inside it) [default: the system temp dir]
    #[arg(long)]
    dir: Option<PathBuf>,

    /// Connection pool size of Larder's SQL registries.
    #[arg(long, default_value_t = 4)]
    pool: u32,

    /// sqlx URL of PostgreSQL's maintenance database; fresh databases are
    /// created next to it.
    #[arg(long, default_value = "postgres://root@127.0.0.1:5432/postgres")]
    pg_admin: String,

    /// sqlx URL of MariaDB/MySQL's maintenance database.
    #[arg(long, default_value = "mysql://root@127.0.0.1:3306/mysql")]
    mysql_admin: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Postgres,
    Sqlite,
    Mysql,
    File,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
            Backend::Mysql => "mysql",
            Backend::File => "file",
        }
    }
}

/// How the views were written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `Registry::apply` per view.
    OneByOne,
    /// One `Registry::apply_all` call.
    Batch,
}

/// Larder's figures for one backend and apply mode.
struct Figures {
    label: String,
    mode: Mode,
    apply_s: f64,
    reapply_s: f64,
    /// Only measured once per backend.
    list: Option<ListFigures>,
    note: Option<String>,
}

struct ListFigures {
    uncached: Stats,
    refresh_ms: f64,
    cached_first_us: f64,
    cached: Stats,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let admin = Admin::new(&args.pg_admin, &args.mysql_admin);
    let result = tokio::select! {
        r = run(&args, &admin) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    // The run's registries, pools, temp dir and Feast child are gone by now,
    // and so are its databases (their guards dropped them, also after an
    // error or Ctrl-C).
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-registry: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args, admin: &Admin) -> Result<()> {
    let mut backends = Vec::new();
    for b in &args.backends {
        if !backends.contains(b) {
            backends.push(*b);
        }
    }
    let n = args.views as usize;
    let base = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir(),
    };
    std::fs::create_dir_all(&base).with_context(|| format!("create {}", base.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix("larder-bench-registry-")
        .tempdir_in(&base)
        .with_context(|| format!("temp dir in {}", base.display()))?;

    print_header(args, admin, &backends, tmp.path()).await;

    let mut larder = Vec::new();
    for b in &backends {
        match b {
            Backend::Postgres | Backend::Mysql => {
                let server = if *b == Backend::Postgres {
                    Server::Postgres
                } else {
                    Server::MySql
                };
                let db = admin.create(server, "larder").await?;
                progress(&format!("{}: fresh database {}", b.name(), db.name()));
                let result = async {
                    let reg: Arc<dyn Registry> = Arc::new(
                        SqlRegistry::connect(db.url(), args.pool)
                            .await
                            .with_context(|| format!("connect Larder's registry to {}", db.url()))?,
                    );
                    bench_backend(b.name(), reg, Mode::OneByOne, n, args, true).await
                }
                .await;
                let dropped = db.remove().await.context("drop the benchmark database");
                larder.push(result?);
                dropped?;
            }
            Backend::Sqlite => {
                let path = tmp.path().join("larder-sqlite.db");
                let url = format!("sqlite://{}?mode=rwc", path.display());
                let reg: Arc<dyn Registry> = Arc::new(
                    SqlRegistry::connect(&url, args.pool)
                        .await
                        .with_context(|| format!("open {url}"))?,
                );
                larder.push(bench_backend("sqlite", reg, Mode::OneByOne, n, args, true).await?);
            }
            Backend::File => {
                let path = tmp.path().join("file-batch").join("registry.pb");
                let reg: Arc<dyn Registry> = Arc::new(FileRegistry::open(&path)?);
                let mut f = bench_backend("file", reg, Mode::Batch, n, args, true).await?;
                f.note = Some(format!("registry file {}", size_text(file_bytes(&path))));
                larder.push(f);

                let path = tmp.path().join("file-one").join("registry.pb");
                let reg: Arc<dyn Registry> = Arc::new(FileRegistry::open(&path)?);
                let mut f = bench_backend("file", reg, Mode::OneByOne, n, args, false).await?;
                // Each apply rewrites the whole file, which grows linearly: O(n^2) bytes.
                let written = file_bytes(&path) * n as f64 / 2.0;
                f.note = Some(format!(
                    "{n} whole-file rewrites, ~{} written (O(n^2))",
                    size_text(written)
                ));
                larder.push(f);
            }
        }
    }

    print_larder(&larder, n);

    let feast = run_feast(args, admin, &backends, tmp.path(), n).await?;
    if let Some(report) = &feast {
        print_comparison(&larder, report, n);
    }
    println!();
    println!("load average at the end: {}", load_average());
    Ok(())
}

/// Apply, re-apply and (if `lists`) list on one registry.
async fn bench_backend(
    label: &str,
    reg: Arc<dyn Registry>,
    mode: Mode,
    n: usize,
    args: &Args,
    lists: bool,
) -> Result<Figures> {
    let mode_text = match mode {
        Mode::OneByOne => "one by one",
        Mode::Batch => "in one apply_all",
    };
    // The entity and the source are applied once, untimed (the Feast script does the same).
    reg.apply(PROJECT, objects::entity()).await?;
    reg.apply(PROJECT, FeastObject::DataSource(objects::source())).await?;

    progress(&format!("{label}: applying {n} feature views {mode_text}"));
    let apply_s = apply_views(&*reg, objects::views(n), mode, ApplyOutcome::Created).await?;
    progress(&format!("{label}: re-applying {n} unchanged feature views {mode_text}"));
    let reapply_s = apply_views(&*reg, objects::views(n), mode, ApplyOutcome::Unchanged).await?;

    let list = if lists {
        Some(list_views(label, reg, n, args).await?)
    } else {
        None
    };
    Ok(Figures {
        label: label.to_string(),
        mode,
        apply_s,
        reapply_s,
        list,
        note: None,
    })
}

/// Seconds to apply `views`; every outcome must be `expect`.
async fn apply_views(reg: &dyn Registry, views: Vec<FeastObject>, mode: Mode, expect: ApplyOutcome) -> Result<f64> {
    let n = views.len();
    let start = Instant::now();
    let outcomes = match mode {
        Mode::Batch => reg.apply_all(PROJECT, views, Vec::new()).await?,
        Mode::OneByOne => {
            let mut out = Vec::with_capacity(n);
            for v in views {
                out.push(reg.apply(PROJECT, v).await?);
            }
            out
        }
    };
    let elapsed = start.elapsed().as_secs_f64();
    let wrong = outcomes.iter().filter(|o| **o != expect).count();
    ensure!(wrong == 0, "{wrong} of {n} applies were not {:?}", expect.as_str());
    Ok(elapsed)
}

/// `list(bench, FeatureView)` straight from the backend, then through a warmed `CachedRegistry`.
async fn list_views(label: &str, reg: Arc<dyn Registry>, n: usize, args: &Args) -> Result<ListFigures> {
    async fn timed(reg: &dyn Registry, n: usize) -> Result<f64> {
        let start = Instant::now();
        let v = reg.list(PROJECT, FeastKind::FeatureView).await?;
        let us = start.elapsed().as_secs_f64() * 1e6;
        ensure!(v.len() == n, "list returned {} views, expected {n}", v.len());
        Ok(us)
    }

    progress(&format!("{label}: list uncached x{}", args.uncached_iters));
    timed(&*reg, n).await?; // warm-up
    let mut samples = Vec::with_capacity(args.uncached_iters as usize);
    for _ in 0..args.uncached_iters {
        samples.push(timed(&*reg, n).await?);
    }
    let uncached = summarize(samples);

    progress(&format!("{label}: list cached x{}", args.cached_iters));
    let cached = CachedRegistry::new(reg, Duration::from_secs(CACHE_TTL_S));
    let start = Instant::now();
    cached.refresh().await?;
    let refresh_ms = start.elapsed().as_secs_f64() * 1e3;
    let cached_first_us = timed(&cached, n).await?;
    timed(&cached, n).await?; // warm-up
    let mut samples = Vec::with_capacity(args.cached_iters as usize);
    for _ in 0..args.cached_iters {
        samples.push(timed(&cached, n).await?);
    }
    Ok(ListFigures {
        uncached,
        refresh_ms,
        cached_first_us,
        cached: summarize(samples),
    })
}

/// Feast's figures for the SQL backends asked for, in fresh databases of its own.
async fn run_feast(
    args: &Args,
    admin: &Admin,
    backends: &[Backend],
    tmp: &Path,
    n: usize,
) -> Result<Option<FeastReport>> {
    if args.no_feast {
        println!("Feast comparison skipped (--no-feast).");
        return Ok(None);
    }
    let python = args
        .feast_python
        .clone()
        .or_else(feast::default_python)
        .unwrap_or_else(|| PathBuf::from("$HOME/.cache/larder/feast-0.67.0/bin/python"));
    if !python.exists() {
        println!(
            "Feast comparison skipped: no Feast venv python at {} (pass --feast-python PATH).",
            python.display()
        );
        return Ok(None);
    }
    let mut targets = FeastTargets {
        postgres: None,
        mysql: None,
        sqlite: None,
    };
    let mut databases = Vec::new();
    for b in backends {
        match b {
            Backend::Postgres => {
                let db = admin.create(Server::Postgres, "feast").await?;
                targets.postgres = Some(db.feast_url());
                databases.push(db);
            }
            Backend::Mysql => {
                let db = admin.create(Server::MySql, "feast").await?;
                targets.mysql = Some(db.feast_url());
                databases.push(db);
            }
            Backend::Sqlite => targets.sqlite = Some(tmp.join("feast-sqlite.db")),
            Backend::File => {}
        }
    }
    if targets.postgres.is_none() && targets.mysql.is_none() && targets.sqlite.is_none() {
        println!("Feast comparison skipped: it covers the SQL registry only and no SQL backend was selected.");
        return Ok(None);
    }
    progress(&format!(
        "running {} with {} (Feast's own SQL registry)",
        feast::script_path().display(),
        python.display()
    ));
    let opts = FeastOptions {
        views: n,
        uncached_iters: args.uncached_iters as usize,
        cached_iters: args.cached_iters as usize,
        time_budget_s: args.feast_time_budget,
        cache_ttl_s: CACHE_TTL_S,
    };
    let report = feast::run(&python, &targets, &opts).await;
    // The Feast databases are not needed any more, whatever happened.
    for db in databases {
        db.remove().await.context("drop a Feast benchmark database")?;
    }
    let report = report?;
    ensure!(
        report.views == n,
        "the Feast script applied {} views, expected {n}",
        report.views
    );
    Ok(Some(report))
}

async fn print_header(args: &Args, admin: &Admin, backends: &[Backend], dir: &Path) {
    let argv: Vec<String> = std::env::args().collect();
    let view_bytes = objects::view(0).encode().len();
    println!("Larder registry benchmark");
    println!("  command:  {}", argv.join(" "));
    println!(
        "  workload: {} feature views x 10 Float32 features, 1 entity (view proto {view_bytes} bytes), project {PROJECT:?}",
        args.views
    );
    println!(
        "  backends: {}",
        backends.iter().map(|b| b.name()).collect::<Vec<_>>().join(", ")
    );
    println!(
        "  machine:  {} CPUs, load average {}",
        std::thread::available_parallelism().map_or(0, |p| p.get()),
        load_average()
    );
    for (b, server) in [(Backend::Postgres, Server::Postgres), (Backend::Mysql, Server::MySql)] {
        if backends.contains(&b) {
            let v = admin
                .version(server)
                .await
                .unwrap_or_else(|e| format!("unknown ({e:#})"));
            println!("  {}: {v}", server.label());
        }
    }
    println!("  files:    {}", dir.display());
    println!(
        "  SQL pool: {} connections; cache TTL {CACHE_TTL_S} s; percentiles nearest-rank",
        args.pool
    );
    println!();
}

fn print_larder(figures: &[Figures], n: usize) {
    println!("1-2. Apply {n} feature views to a fresh registry, then re-apply them unchanged (no-op path)");
    let mut t = Table::new(&[
        ("backend", Align::Left),
        ("writes", Align::Left),
        ("apply s", Align::Right),
        ("views/s", Align::Right),
        ("re-apply s", Align::Right),
        ("views/s", Align::Right),
        ("note", Align::Left),
    ]);
    for f in figures {
        t.row(vec![
            f.label.clone(),
            match f.mode {
                Mode::OneByOne => "apply, one by one".into(),
                Mode::Batch => "apply_all, one batch".into(),
            },
            secs(f.apply_s),
            rate(n, f.apply_s),
            secs(f.reapply_s),
            rate(n, f.reapply_s),
            f.note.clone().unwrap_or_default(),
        ]);
    }
    println!("{}", t.render());

    println!("3. list({PROJECT:?}, FeatureView) returning {n} views, microseconds per call");
    let mut t = Table::new(&[
        ("backend", Align::Left),
        ("read path", Align::Left),
        ("calls", Align::Right),
        ("mean us", Align::Right),
        ("p50 us", Align::Right),
        ("p99 us", Align::Right),
    ]);
    for f in figures {
        let Some(l) = &f.list else { continue };
        let stats_row = |path: &str, s: &Stats| {
            vec![
                f.label.clone(),
                path.to_string(),
                s.n.to_string(),
                micros(s.mean),
                micros(s.p50),
                micros(s.p99),
            ]
        };
        t.row(stats_row("uncached (backend)", &l.uncached));
        t.row(stats_row("cached (CachedRegistry, warm)", &l.cached));
        let once = |path: &str, us: f64| {
            vec![
                f.label.clone(),
                path.to_string(),
                "1".into(),
                micros(us),
                "-".into(),
                "-".into(),
            ]
        };
        t.row(once("cache refresh (snapshot build)", l.refresh_ms * 1e3));
        t.row(once("cached, 1st call after refresh", l.cached_first_us));
    }
    println!("{}", t.render());
}

fn print_comparison(larder: &[Figures], feast: &FeastReport, n: usize) {
    println!(
        "4. Larder vs Feast {} SQL registry (same workload, fresh databases; ratio = Feast / Larder, >1 means Larder is faster)",
        feast.feast_version
    );
    let mut t = Table::new(&[
        ("backend", Align::Left),
        ("figure", Align::Left),
        ("Larder", Align::Right),
        ("Feast", Align::Right),
        ("ratio", Align::Right),
    ]);
    let mut notes = Vec::new();
    for (name, fe) in &feast.backends {
        let Some(la) = larder.iter().find(|f| &f.label == name && f.mode == Mode::OneByOne) else {
            continue;
        };
        add_comparison(&mut t, name, la, fe, n);
        notes.push(format!(
            "{name}: Feast ran {} uncached and {} cached list calls; its re-apply changed {} of {n} stored views",
            fe.list_uncached_us.n, fe.list_cached_us.n, fe.reapply_changed
        ));
    }
    println!("{}", t.render());
    for note in notes {
        println!("  {note}");
    }
    for (name, why) in &feast.skipped {
        println!("  {name}: Feast not measured ({why})");
    }
    if larder.iter().any(|f| f.label == "file") {
        println!("  file: not compared (the Feast script measures Feast's SQL registry only)");
    }
    println!(
        "  Feast's cached list_feature_views memoizes the converted list per cached registry proto and returns the same\n  \
         list object until the next refresh; Larder's CachedRegistry::list returns an owned copy of the views on every call."
    );
}

fn add_comparison(t: &mut Table, name: &str, la: &Figures, fe: &FeastFigures, n: usize) {
    let mut row = |figure: String, l: f64, f: f64, fmt: fn(f64) -> String| {
        t.row(vec![name.to_string(), figure, fmt(l), fmt(f), ratio(l, f)]);
    };
    row(format!("apply {n} views, one by one (s)"), la.apply_s, fe.apply_s, secs);
    row(format!("re-apply {n} unchanged (s)"), la.reapply_s, fe.reapply_s, secs);
    let Some(l) = &la.list else { return };
    let u = (&l.uncached, &fe.list_uncached_us);
    row("list uncached mean (us)".into(), u.0.mean, u.1.mean, micros);
    row("list uncached p50 (us)".into(), u.0.p50, u.1.p50, micros);
    row("list uncached p99 (us)".into(), u.0.p99, u.1.p99, micros);
    row("cache refresh (ms)".into(), l.refresh_ms, fe.refresh_ms, |v| {
        format!("{v:.1}")
    });
    row(
        "list cached, 1st call after refresh (us)".into(),
        l.cached_first_us,
        fe.list_cached_first_us,
        micros,
    );
    let c = (&l.cached, &fe.list_cached_us);
    row("list cached mean (us)".into(), c.0.mean, c.1.mean, micros);
    row("list cached p50 (us)".into(), c.0.p50, c.1.p50, micros);
    row("list cached p99 (us)".into(), c.0.p99, c.1.p99, micros);
}

/// The 1, 5 and 15 minute load averages (other work on the machine skews the figures).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn file_bytes(path: &Path) -> f64 {
    std::fs::metadata(path).map_or(0.0, |m| m.len() as f64)
}

fn size_text(bytes: f64) -> String {
    if bytes >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", bytes / 1024.0 / 1024.0)
    } else {
        format!("{:.0} KiB", bytes / 1024.0)
    }
}

fn progress(msg: &str) {
    eprintln!("[bench] {msg}");
}
