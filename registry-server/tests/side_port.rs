//! The real `registry-server` binary's side port (`--metrics-port`), over a
//! SQLite SQL registry: `GET /metrics` has the RPC and registry cache
//! metrics, `GET /healthz` answers 200 "ok" while the registry can be read
//! and 200 "stale: …" while it cannot (cached reads are served from the
//! last good snapshot), both
//! servers stop on SIGTERM with exit code 0, and `--metrics-port 0` listens
//! on the gRPC port alone.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use larder_protos::feast::registry as fr;
use larder_protos::feast::registry::registry_server_client::RegistryServerClient;
use larder_registry::Registry;
use larder_registry::sql::SqlRegistry;

/// A `registry-server` process, killed on drop unless it already exited.
struct Server {
    child: Child,
    port: u16,
    metrics_port: u16,
    log: PathBuf,
}

impl Server {
    /// Start the binary with `--metrics-port` `metrics` (`None`: a free port;
    /// `Some(0)`: disabled) and wait until the gRPC port accepts connections.
    fn start(config: &Path, metrics: Option<u16>) -> Self {
        let log = config.with_file_name("server.log");
        let mut last = String::new();
        // Free ports are found by binding port 0 and letting go: retry if
        // another process took one in between.
        for _ in 0..5 {
            let port = free_port();
            let metrics_port = metrics.unwrap_or_else(free_port);
            let out = std::fs::File::create(&log).unwrap();
            let child = Command::new(env!("CARGO_BIN_EXE_registry-server"))
                .args(["-c", config.to_str().unwrap(), "--host", "127.0.0.1"])
                .args(["--port", &port.to_string(), "--metrics-port", &metrics_port.to_string()])
                .env_remove("LARDER_CONFIG")
                .env_remove("LARDER_REGISTRY")
                .env_remove("LARDER_HOST")
                .env_remove("LARDER_REGISTRY_PORT")
                .env_remove("LARDER_REGISTRY_METRICS_PORT")
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .expect("spawn registry-server");
            let mut server = Server {
                child,
                port,
                metrics_port,
                log: log.clone(),
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Some(status) = server.child.try_wait().unwrap() {
                    last = format!("exited with {status}: {}", server.log_text());
                    break;
                }
                if TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok() {
                    return server;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            assert!(
                server.child.try_wait().unwrap().is_some(),
                "registry-server not ready within 30s:\n{}",
                server.log_text()
            );
        }
        panic!("registry-server did not start: {last}");
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The TCP ports the process listens on (its sockets in /proc).
    fn listening_ports(&self) -> BTreeSet<u16> {
        let pid = self.child.id();
        let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter_map(|l| {
                let l = l.to_string_lossy().into_owned();
                Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
            })
            .collect();
        let mut ports = BTreeSet::new();
        for table in ["tcp", "tcp6"] {
            let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
            for line in text.lines().skip(1) {
                let f: Vec<&str> = line.split_whitespace().collect();
                // local_address is f[1] (hex ip:port), st f[3] (0A = LISTEN), inode f[9].
                if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                    let port = f[1].rsplit(':').next().unwrap();
                    ports.insert(u16::from_str_radix(port, 16).unwrap());
                }
            }
        }
        ports
    }

    /// SIGTERM; require exit code 0 within 10 s.
    fn terminate(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "exit {status} after SIGTERM:\n{}", self.log_text());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "still running after SIGTERM:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP/1.1 GET: (status, head, body).
fn get(port: u16, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect {port}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text}"));
    (status, head.to_string(), body.to_string())
}

/// `larder.yaml` with a SQLite SQL registry whose cache lasts one second.
fn config(dir: &Path) -> (PathBuf, String) {
    let db = dir.join("registry.db");
    let cfg = dir.join("larder.yaml");
    std::fs::write(
        &cfg,
        format!(
            "registry:\n  registry_type: sql\n  path: sqlite:///{}\n  cache_ttl_seconds: 1\n",
            db.display()
        ),
    )
    .unwrap();
    (cfg, format!("sqlite://{}?mode=rwc", db.display()))
}

/// Poll `/healthz` until its body is `want`-like (the cache refreshes once
/// a second); every answer is a 200, and quick.
fn wait_health(server: &Server, want: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let asked = Instant::now();
        let (status, _, body) = get(server.metrics_port, "/healthz");
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "/healthz took {:?}",
            asked.elapsed()
        );
        assert_eq!(status, 200, "{body}\n{}", server.log_text());
        if want(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz still {body:?}:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn side_port_serves_metrics_and_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, url) = config(dir.path());
    let server = Server::start(&cfg, None);
    assert_eq!(
        server.listening_ports(),
        BTreeSet::from([server.port, server.metrics_port]),
        "gRPC and side port"
    );

    let (status, _, body) = get(server.metrics_port, "/healthz");
    assert_eq!((status, body.as_str()), (200, "ok"), "{}", server.log_text());

    // Calls through the real gRPC port show up in /metrics.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", server.port))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = RegistryServerClient::new(channel);
    client
        .list_entities(fr::ListEntitiesRequest {
            project: "demo".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let missing = client
        .get_entity(fr::GetEntityRequest {
            name: "nope".into(),
            project: "demo".into(),
            allow_cache: true,
        })
        .await;
    assert_eq!(missing.unwrap_err().code(), tonic::Code::NotFound);
    let (status, head, body) = get(server.metrics_port, "/metrics");
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    for want in [
        "# TYPE larder_registry_rpc_total counter",
        "larder_registry_rpc_total{code=\"0\",method=\"ListEntities\"} 1",
        "larder_registry_rpc_total{code=\"5\",method=\"GetEntity\"} 1",
        "# TYPE larder_registry_rpc_duration_seconds histogram",
        "larder_registry_rpc_duration_seconds_bucket{method=\"ListEntities\",le=\"0.0005\"}",
        "# TYPE larder_registry_snapshot_age_seconds gauge",
        "# TYPE larder_registry_refresh_failures_total counter",
        "larder_registry_refresh_failures_total 0",
        "larder_registry_stale 0",
    ] {
        assert!(body.contains(want), "no {want:?} in /metrics:\n{body}");
    }
    assert_eq!(get(server.metrics_port, "/nope").0, 404);

    // The registry's tables gone: still 200 (cached reads are served from
    // the last snapshot), saying stale once a refresh has failed, and the
    // cached read still answers; "ok" again once the tables are back.
    SqlRegistry::connect(&url, 1).await.unwrap().teardown().await.unwrap();
    let body = wait_health(&server, |b| b.starts_with("stale"));
    assert!(body.contains("registry unreadable"), "{body}");
    assert!(server.log_text().contains("registry unreadable"), "the cause is logged");
    let cached = client
        .list_entities(fr::ListEntitiesRequest {
            project: "demo".into(),
            allow_cache: true,
            ..Default::default()
        })
        .await;
    assert!(cached.is_ok(), "{cached:?}");
    let (_, _, text) = get(server.metrics_port, "/metrics");
    assert!(text.contains("larder_registry_stale 1"), "{text}");
    drop(SqlRegistry::connect(&url, 1).await.unwrap());
    assert_eq!(wait_health(&server, |b| b == "ok"), "ok");

    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_port_zero_listens_on_the_grpc_port_only() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, _) = config(dir.path());
    let server = Server::start(&cfg, Some(0));
    assert_eq!(server.listening_ports(), BTreeSet::from([server.port]));
    assert!(!server.log_text().contains("/metrics"), "{}", server.log_text());
    server.terminate();
}

/// A side port that is taken is a startup error naming it.
#[test]
fn taken_metrics_port_is_a_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, _) = config(dir.path());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mport = taken.local_addr().unwrap().port();
    let out = Command::new(env!("CARGO_BIN_EXE_registry-server"))
        .args(["-c", cfg.to_str().unwrap(), "--host", "127.0.0.1"])
        .args(["--port", &free_port().to_string(), "--metrics-port", &mport.to_string()])
        .env_remove("LARDER_CONFIG")
        .env_remove("LARDER_REGISTRY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{mport} (--metrics-port)")),
        "{err}"
    );
}
