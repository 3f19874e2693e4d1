//! Helpers for tests that drive the `larder` binary: registry dumps, the
//! Feast 0.67 venv, and `larder` server processes. Per-test databases come
//! from larder-testkit.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use larder_registry::sql::ALL_TABLES;
use sqlx::{AnyConnection, AssertSqlSafe, Connection, Executor, Row};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

pub fn example_dir() -> PathBuf {
    repo_root().join("examples/driver-stats")
}

/// Run `larder` with `args`; returns the output (never panics on failure).
pub fn larder(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_larder"))
        .args(args)
        .env_remove("LARDER_CONFIG")
        .env_remove("LARDER_PROJECT")
        .env_remove("LARDER_REGISTRY")
        .output()
        .expect("run larder")
}

/// Run `larder` and require success; returns stdout.
pub fn larder_ok(args: &[&str]) -> String {
    let out = larder(args);
    assert!(
        out.status.success(),
        "larder {args:?} failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every row of every registry table, as text, in a stable order: two
/// dumps are equal exactly when the registry is unchanged.
pub async fn dump_sql(url: &str) -> Vec<String> {
    sqlx::any::install_default_drivers();
    let mut c = AnyConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    let mut out = Vec::new();
    for t in ALL_TABLES {
        let rows = c
            .fetch_all(AssertSqlSafe(format!("SELECT * FROM {t}")))
            .await
            .unwrap_or_else(|e| panic!("dump {t}: {e}"));
        let mut lines: Vec<String> = rows
            .iter()
            .map(|r| {
                let cols: Vec<String> = (0..r.len())
                    .map(|i| {
                        r.try_get::<Vec<u8>, _>(i)
                            .map(hex::encode)
                            .or_else(|_| r.try_get::<String, _>(i))
                            .or_else(|_| r.try_get::<i64, _>(i).map(|n| n.to_string()))
                            .or_else(|_| r.try_get::<i32, _>(i).map(|n| n.to_string()))
                            .unwrap_or_else(|_| "NULL".into())
                    })
                    .collect();
                format!("{t}: {}", cols.join(" | "))
            })
            .collect();
        lines.sort();
        out.extend(lines);
    }
    let _ = c.close().await;
    out
}

/// The Feast 0.67 venv's python; see [`larder_testkit::feast::python`].
pub fn feast_python() -> Option<PathBuf> {
    larder_testkit::feast::python()
}

/// Run a Feast e2e script with the venv's python (TZ=UTC).
pub fn feast_script(python: &Path, args: &[&str]) -> Output {
    Command::new(python)
        .args(args)
        .env("TZ", "UTC")
        .current_dir(repo_root())
        .output()
        .expect("run python")
}

pub fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `larder` server subcommand running in the background; killed
/// (SIGKILL) on drop unless it already exited.
pub struct LarderProcess {
    child: std::process::Child,
    /// The port it listens on (the first one `args` was given).
    pub port: u16,
    log: PathBuf,
    what: String,
}

impl LarderProcess {
    /// Spawn `larder <args(port)>` on a free port (bind 0, drop, spawn;
    /// retried if the port was taken in between) with the `LARDER_*`
    /// variables in `env_remove` unset, and wait up to 30 s until
    /// `ready(port)`.
    pub fn start(
        what: &str,
        log: PathBuf,
        env_remove: &[&str],
        args: impl Fn(u16) -> Vec<String>,
        ready: impl Fn(u16) -> bool,
    ) -> Self {
        Self::start_env(what, log, &[], env_remove, args, ready)
    }

    /// [`LarderProcess::start`] with the variables in `env` set.
    pub fn start_env(
        what: &str,
        log: PathBuf,
        env: &[(&str, &str)],
        env_remove: &[&str],
        args: impl Fn(u16) -> Vec<String>,
        ready: impl Fn(u16) -> bool,
    ) -> Self {
        use std::process::Stdio;
        use std::time::{Duration, Instant};
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let out = std::fs::File::create(&log).unwrap();
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_larder"));
            cmd.args(args(port));
            for v in env_remove {
                cmd.env_remove(v);
            }
            cmd.envs(env.iter().copied());
            let child = cmd
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
            let mut server = LarderProcess {
                child,
                port,
                log: log.clone(),
                what: what.to_string(),
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Some(status) = server.child.try_wait().unwrap() {
                    last = format!("exited with {status}: {}", server.log_text());
                    break;
                }
                if ready(port) {
                    return server;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if server.child.try_wait().unwrap().is_none() {
                panic!("{what} was not ready within 30s:\n{}", server.log_text());
            }
        }
        panic!("{what} did not start: {last}");
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then require exit code 0 within `within`; returns the time it took.
    pub fn terminate(mut self, within: std::time::Duration) -> std::time::Duration {
        let pid = self.child.id().to_string();
        let started = std::time::Instant::now();
        let status = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(status.success(), "kill -TERM {pid} failed");
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "{} exited with {status} after SIGTERM:\n{}",
                    self.what,
                    self.log_text()
                );
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "{} still running {within:?} after SIGTERM:\n{}",
                self.what,
                self.log_text()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for LarderProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Start `larder serve` on free ports (HTTP and gRPC: the default 6567
/// would collide between tests running in parallel) and wait until
/// `/health` answers 200.
pub fn start_serve(cfg: &Path, log: PathBuf) -> LarderProcess {
    start_serve_env(cfg, log, &[], &[])
}

/// [`start_serve`] with the variables in `env` set and those in `env_remove` unset.
pub fn start_serve_env(cfg: &Path, log: PathBuf, env: &[(&str, &str)], env_remove: &[&str]) -> LarderProcess {
    serve(cfg, log, Verbosity::Default, env, env_remove)
}

/// [`start_serve`] logging at debug level (`-vv`, `RUST_LOG` unset), for
/// tests that read the server's log.
pub fn start_serve_verbose(cfg: &Path, log: PathBuf) -> LarderProcess {
    serve(cfg, log, Verbosity::Debug, &[], &[])
}

/// How much a started server logs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// The binary's default (or `RUST_LOG`).
    Default,
    /// `-vv` with `RUST_LOG` unset.
    Debug,
}

impl Verbosity {
    fn args(self) -> &'static [&'static str] {
        match self {
            Verbosity::Default => &[],
            Verbosity::Debug => &["-vv"],
        }
    }

    fn env_remove(self) -> &'static [&'static str] {
        match self {
            Verbosity::Default => &[],
            Verbosity::Debug => &["RUST_LOG"],
        }
    }
}

fn serve(cfg: &Path, log: PathBuf, verbosity: Verbosity, env: &[(&str, &str)], env_remove: &[&str]) -> LarderProcess {
    let cfg = cfg.to_str().unwrap().to_string();
    let remove: Vec<&str> = [
        "LARDER_CONFIG",
        "LARDER_PROJECT",
        "LARDER_REGISTRY",
        "LARDER_HOST",
        "LARDER_PORT",
        "LARDER_GRPC_PORT",
    ]
    .into_iter()
    .chain(verbosity.env_remove().iter().copied())
    .chain(env_remove.iter().copied())
    .collect();
    LarderProcess::start_env(
        "larder serve",
        log,
        env,
        &remove,
        |port| {
            let grpc = loop {
                let p = free_port();
                if p != port {
                    break p;
                }
            };
            let mut args: Vec<String> = verbosity.args().iter().map(|a| a.to_string()).collect();
            args.extend(
                [
                    "-c",
                    &cfg,
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                    "--grpc-port",
                    &grpc.to_string(),
                ]
                .map(String::from),
            );
            args
        },
        |port| matches!(raw_get(port, "/health"), Some((200, _))),
    )
}

/// Start `larder registry-server` on a free port and wait until it accepts
/// TCP connections, and so does its side port `metrics_port` (0: no side
/// port; tests run at once and would all want the default 6571).
pub fn start_registry_server(cfg: &Path, log: PathBuf, verbosity: Verbosity, metrics_port: u16) -> LarderProcess {
    let cfg = cfg.to_str().unwrap().to_string();
    let remove: Vec<&str> = [
        "LARDER_CONFIG",
        "LARDER_PROJECT",
        "LARDER_REGISTRY",
        "LARDER_HOST",
        "LARDER_REGISTRY_PORT",
        "LARDER_REGISTRY_METRICS_PORT",
    ]
    .into_iter()
    .chain(verbosity.env_remove().iter().copied())
    .collect();
    let accepts = |p: u16| {
        std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], p).into(), std::time::Duration::from_millis(200)).is_ok()
    };
    LarderProcess::start_env(
        "larder registry-server",
        log,
        &[],
        &remove,
        move |port| {
            let mut args: Vec<String> = verbosity.args().iter().map(|a| a.to_string()).collect();
            args.extend(
                [
                    "-c",
                    &cfg,
                    "registry-server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                    "--metrics-port",
                    &metrics_port.to_string(),
                ]
                .map(String::from),
            );
            args
        },
        move |port| accepts(port) && (metrics_port == 0 || accepts(metrics_port)),
    )
}

/// A minimal HTTP/1.1 GET (no curl): `(status, body)`, None if not reachable.
pub fn raw_get(port: u16, path: &str) -> Option<(u16, String)> {
    raw_exchange(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"),
        Duration::from_secs(5),
    )
}

/// A minimal HTTP/1.1 POST of JSON, waiting up to `read_timeout` for the
/// answer: `(status, body)`, None if not reachable or cut off.
pub fn raw_post_json(port: u16, path: &str, body: &str, read_timeout: Duration) -> Option<(u16, String)> {
    raw_exchange(
        port,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
        read_timeout,
    )
}

/// Send one whole request (with `Connection: close`) and read the answer to its end.
fn raw_exchange(port: u16, request: &str, read_timeout: Duration) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(read_timeout)).ok()?;
    s.write_all(request.as_bytes()).ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split(' ').nth(1)?.parse().ok()?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// `feature_store.yaml` for a repo in `dir`: a SQLite SQL registry and
/// online store there, the file offline store.
pub fn sqlite_repo_yaml(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "project: driver_stats\nprovider: local\nregistry:\n  registry_type: sql\n  path: sqlite:///{d}/registry.db\n  cache_ttl_seconds: 5\nonline_store:\n  type: sqlite\n  path: {d}/online.db\noffline_store:\n  type: file\nentity_key_serialization_version: 3\n"
    )
}

/// Where an example repo's Parquet data lives.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ExampleData {
    /// The repository's `examples/driver-stats/data`: for tests that only read.
    Shared,
    /// A copy in the repo's directory (manifests and data), for tests that
    /// write to the batch source (pushes to the offline store).
    Copied,
}

/// The driver-stats example applied into a fresh repo in a temporary
/// directory ([`sqlite_repo_yaml`]): the directory and its `feature_store.yaml`.
pub fn example_repo(data: ExampleData) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("feature_store.yaml");
    std::fs::write(&cfg, sqlite_repo_yaml(dir.path())).unwrap();
    let manifests = match data {
        ExampleData::Shared => example_dir().join("manifests"),
        ExampleData::Copied => {
            for sub in ["manifests", "data"] {
                std::fs::create_dir_all(dir.path().join(sub)).unwrap();
                for e in std::fs::read_dir(example_dir().join(sub)).unwrap() {
                    let e = e.unwrap();
                    if e.file_type().unwrap().is_file() {
                        std::fs::copy(e.path(), dir.path().join(sub).join(e.file_name())).unwrap();
                    }
                }
            }
            dir.path().join("manifests")
        }
    };
    larder_ok(&["-c", cfg.to_str().unwrap(), "apply", "-f", manifests.to_str().unwrap()]);
    (dir, cfg)
}
