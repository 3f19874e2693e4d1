//! Registry-server load: N concurrent gRPC clients, each applying new
//! feature views and listing them (cached and uncached) for a fixed time,
//! against a fresh PostgreSQL registry. Afterwards every acknowledged apply
//! must be in the registry. Prints requests/s and latency percentiles.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use larder_protos::feast::core as fc;
use larder_protos::feast::registry as fr;
use larder_protos::feast::registry::registry_server_client::RegistryServerClient;
use larder_testkit::objects::{ValueType, ViewBuilder};
use larder_testkit::{SqlDatabase, SqlServer};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 16)]
    clients: usize,
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    #[arg(long, default_value = "postgres://root@127.0.0.1:5432/postgres")]
    pg_admin: String,
}

#[derive(Default)]
struct Stats {
    apply: Vec<f64>,
    list_cached: Vec<f64>,
    list_uncached: Vec<f64>,
    errors: usize,
    acked: usize,
}

/// Ten FLOAT features over entity `driver`; no entity column, source or version.
fn view(name: &str) -> fc::FeatureView {
    ViewBuilder::new(name)
        .entity("driver")
        .with_features(ValueType::Float, (0..10).map(|i| format!("f{i}")))
        .build()
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[i.clamp(1, v.len()) - 1]
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    // A fresh database next to the maintenance one, dropped at the end (by
    // the guard, should the run fail).
    let db = SqlDatabase::create_on(SqlServer::Postgres, &args.pg_admin, "larder_bench_rs")
        .await
        .context("create database")?;
    let result = run(&args, db.url()).await;
    db.remove().await.context("drop database")?;
    result
}

async fn run(args: &Args, url: &str) -> Result<()> {
    let backend = Arc::new(larder_registry::sql::SqlRegistry::connect(url, 16).await?);
    let reg = Arc::new(larder_registry::cache::CachedRegistry::new(
        backend.clone(),
        Duration::from_secs(1),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(larder_registry_server::serve(listener, reg, None, async {
        let _ = stop_rx.await;
    }));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let endpoint = format!("http://{addr}");
        tasks.push(tokio::spawn(async move {
            let mut stats = Stats::default();
            let channel = match tonic::transport::Endpoint::from_shared(endpoint) {
                Ok(e) => match e.connect().await {
                    Ok(ch) => ch,
                    Err(_) => {
                        stats.errors += 1;
                        return stats;
                    }
                },
                Err(_) => {
                    stats.errors += 1;
                    return stats;
                }
            };
            let mut client = RegistryServerClient::new(channel);
            let mut i = 0usize;
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = client
                    .apply_feature_view(fr::ApplyFeatureViewRequest {
                        base_feature_view: Some(fr::apply_feature_view_request::BaseFeatureView::FeatureView(view(
                            &format!("c{c}_v{i}"),
                        ))),
                        project: "bench".into(),
                        commit: true,
                    })
                    .await;
                stats.apply.push(t.elapsed().as_secs_f64() * 1e3);
                match r {
                    Ok(_) => stats.acked += 1,
                    Err(_) => stats.errors += 1,
                }
                i += 1;
                for cached in [true, false] {
                    let t = Instant::now();
                    let r = client
                        .list_feature_views(fr::ListFeatureViewsRequest {
                            project: "bench".into(),
                            allow_cache: cached,
                            ..Default::default()
                        })
                        .await;
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    if cached {
                        stats.list_cached.push(ms)
                    } else {
                        stats.list_uncached.push(ms)
                    }
                    if r.is_err() {
                        stats.errors += 1;
                    }
                }
            }
            stats
        }));
    }
    let mut all = Stats::default();
    for t in tasks {
        let s = t.await?;
        all.apply.extend(s.apply);
        all.list_cached.extend(s.list_cached);
        all.list_uncached.extend(s.list_uncached);
        all.errors += s.errors;
        all.acked += s.acked;
    }
    let _ = stop_tx.send(());
    server.await??;
    use larder_registry::Registry;
    let stored = backend.list("bench", larder_model_kind()).await?.len();
    let secs = args.seconds as f64;
    println!(
        "registry server load: {} clients x {} s, PostgreSQL backend, cache TTL 1 s",
        args.clients, args.seconds
    );
    println!(
        "{:<26} {:>8} {:>10} {:>9} {:>9} {:>9}",
        "operation", "count", "req/s", "p50 ms", "p99 ms", "max ms"
    );
    for (name, v) in [
        ("ApplyFeatureView", &mut all.apply),
        ("ListFeatureViews cached", &mut all.list_cached),
        ("ListFeatureViews uncached", &mut all.list_uncached),
    ] {
        let n = v.len();
        let max = v.iter().cloned().fold(0.0, f64::max);
        println!(
            "{:<26} {:>8} {:>10.0} {:>9.2} {:>9.2} {:>9.2}",
            name,
            n,
            n as f64 / secs,
            pct(v, 50.0),
            pct(v, 99.0),
            max
        );
    }
    println!(
        "errors: {}   acknowledged applies: {}   views stored afterwards: {}",
        all.errors, all.acked, stored
    );
    if all.errors > 0 || stored != all.acked {
        bail!(
            "lost or failed writes: {} errors, {} acknowledged vs {} stored",
            all.errors,
            all.acked,
            stored
        );
    }
    Ok(())
}

fn larder_model_kind() -> larder_model::feast::FeastKind {
    larder_model::feast::FeastKind::FeatureView
}
