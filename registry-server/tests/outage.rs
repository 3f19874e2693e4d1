//! The registry server's cached reads while its PostgreSQL is unreachable
//! (a proxy between them is cut): every `allow_cache` read answers, fast,
//! from the last good snapshot; the side port's `/healthz` answers at once
//! with 200 and says the registry is stale; `/metrics` has the snapshot's
//! age and the failed refreshes; once the proxy is restored, an object
//! applied meanwhile by another client is read within seconds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use larder_protos::feast::registry as fr;
use larder_protos::feast::registry::registry_server_client::RegistryServerClient;
use larder_registry::Registry;
use larder_registry::cache::CachedRegistry;
use larder_registry::sql::SqlRegistry;
use larder_testkit::objects::{IntoObject, entity};
use larder_testkit::{PgDatabase, TcpProxy, unique_name};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A plain HTTP/1.1 GET on the side port: (status, body).
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, body.to_string())
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cached_reads_survive_a_registry_outage() {
    let db = PgDatabase::create("larder_rs_outage").await;
    let proxy = TcpProxy::start(format!("{}:{}", db.host(), db.port())).await;
    let via_proxy = format!("postgres://{}@127.0.0.1:{}/{}", db.user(), proxy.port(), db.name());
    let direct = SqlRegistry::connect(db.url(), 2).await.unwrap();
    let project = unique_name("p");
    direct.apply(&project, entity("a", "a_id").object()).await.unwrap();

    let reg = Arc::new(CachedRegistry::new(
        Arc::new(SqlRegistry::connect(&via_proxy, 4).await.unwrap()),
        Duration::from_secs(1),
    ));
    let metrics = Arc::new(larder_registry_server::metrics::Metrics::new().unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let side = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let side_addr = side.local_addr().unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let server = tokio::spawn(larder_registry_server::serve_with_metrics(
        listener,
        reg.clone(),
        None,
        Some(metrics.clone()),
        stop(rx.clone()),
    ));
    let side_task = tokio::spawn(larder_registry_server::metrics::serve_side(
        metrics,
        reg,
        side,
        stop(rx),
    ));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = RegistryServerClient::new(channel);
    let list = |mut client: RegistryServerClient<tonic::transport::Channel>, project: String| async move {
        let t = Instant::now();
        let r = tokio::time::timeout(
            Duration::from_secs(40),
            client.list_entities(fr::ListEntitiesRequest {
                project,
                allow_cache: true,
                ..Default::default()
            }),
        )
        .await;
        let names: Result<Vec<String>, String> = match r {
            Ok(Ok(resp)) => Ok(resp
                .into_inner()
                .entities
                .into_iter()
                .filter_map(|e| e.spec.map(|s| s.name))
                .collect()),
            Ok(Err(status)) => Err(status.to_string()),
            Err(_) => Err("no answer within 40 s".into()),
        };
        (names, t.elapsed())
    };
    let (names, _) = list(client.clone(), project.clone()).await;
    assert_eq!(names.unwrap(), ["a"]);
    assert_eq!(get(side_addr, "/healthz").await, (200, "ok".to_string()));

    proxy.cut();
    let cut_at = Instant::now();
    let mut stale = None;
    let mut slowest = Duration::ZERO;
    // Six seconds of cached reads and probes: the TTL passes many times over.
    while cut_at.elapsed() < Duration::from_secs(6) || stale.is_none() {
        let (names, took) = list(client.clone(), project.clone()).await;
        assert_eq!(
            names.as_deref(),
            Ok(&["a".to_string()][..]),
            "cached read during the outage"
        );
        slowest = slowest.max(took);
        let get_entity = client
            .get_entity(fr::GetEntityRequest {
                name: "a".into(),
                project: project.clone(),
                allow_cache: true,
            })
            .await;
        assert!(get_entity.is_ok(), "{get_entity:?}");
        let t = Instant::now();
        let (status, body) = tokio::time::timeout(Duration::from_secs(5), get(side_addr, "/healthz"))
            .await
            .expect("/healthz answers");
        assert!(t.elapsed() < Duration::from_secs(1), "/healthz took {:?}", t.elapsed());
        assert_eq!(status, 200, "serving from the snapshot: {body}");
        if body.starts_with("stale") {
            stale = Some(body);
        }
        assert!(cut_at.elapsed() < Duration::from_secs(20), "/healthz never said stale");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(slowest < Duration::from_secs(2), "slowest cached read {slowest:?}");
    let stale = stale.unwrap_or_default();
    assert!(stale.contains("registry unreadable"), "{stale}");
    let (_, text) = get(side_addr, "/metrics").await;
    assert!(
        metric(&text, "larder_registry_refresh_failures_total").is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        metric(&text, "larder_registry_snapshot_age_seconds").is_some_and(|a| a > 5.0),
        "{text}"
    );

    proxy.restore();
    direct.apply(&project, entity("b", "b_id").object()).await.unwrap();
    let restored = Instant::now();
    loop {
        let (names, _) = list(client.clone(), project.clone()).await;
        if names.as_deref() == Ok(&["a".to_string(), "b".to_string()][..]) {
            break;
        }
        assert!(
            restored.elapsed() < Duration::from_secs(10),
            "b not read 10 s after the restore: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "slowest cached read during the outage {slowest:?}; new entity read {:?} after the restore",
        restored.elapsed()
    );
    assert_eq!(get(side_addr, "/healthz").await, (200, "ok".to_string()));

    tx.send(true).unwrap();
    server.await.unwrap().unwrap();
    side_task.await.unwrap().unwrap();
}
