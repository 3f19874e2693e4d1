//! `larder registry-server` with Feast 0.67 as the client (issue acceptance:
//! "with `registry: {registry_type: remote, path: 127.0.0.1:PORT}`, Feast
//! runs `feast apply`, `feast feature-views list`, `feast entities list`,
//! `feast materialize` and `get_online_features` through our server, and
//! `larder ls` then shows what `feast apply` wrote; objects applied with
//! `larder apply` are listed by the SDK through the server";
//! feast-compat.md §10 item 3).
//!
//! For a SQL registry on a fresh PostgreSQL database and on SQLite: spawn
//! `larder -c CFG registry-server` on a free port, run the venv's `feast`
//! CLI in a copy of e2e/feast/feast_repo_remote (entity, file source, view,
//! request source, on-demand view, feature service, permission; remote
//! registry, SQLite online store), then e2e/feast/check_remote_registry.py
//! (list/get of every kind, NOT_FOUND classes, `store.apply([Entity])`,
//! `registry.apply_permission`, `materialize` + `get_online_features`,
//! deletes). `larder` then reads the same database directly. Reverse:
//! `larder apply` the driver-stats example into the same registry and
//! check it with e2e/feast/check_registry.py through the server. SIGTERM
//! must stop the server with exit code 0.

mod support;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use larder_testkit::PgDatabase;
use serde_json::Value;
use support::*;

const START: &str = "2024-01-01T00:00:00";
const END: &str = "2024-01-01T02:00:00";

fn addr(server: &LarderProcess) -> String {
    format!("127.0.0.1:{}", server.port)
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run the venv's `feast` CLI in `repo` (TZ=UTC); require success, return stdout.
fn feast_cli(python: &Path, repo: &Path, args: &[&str], server: &LarderProcess) -> String {
    let started = Instant::now();
    let out = Command::new(python.parent().unwrap().join("feast"))
        .args(args)
        .current_dir(repo)
        .env("TZ", "UTC")
        .env("FEAST_USAGE", "False")
        .output()
        .expect("run feast");
    assert!(
        out.status.success(),
        "feast {args:?} failed:\nstdout:\n{}\nstderr:\n{}\nserver log:\n{}",
        text(&out),
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
    eprintln!("feast {} took {:.1?}", args.join(" "), started.elapsed());
    text(&out)
}

/// Copy e2e/feast/feast_repo_remote to `dest`, write its Parquet data and
/// a feature_store.yaml pointing at the server.
fn prepare_repo(python: &Path, dest: &Path, addr: &str) {
    let root = repo_root();
    let src = root.join("e2e/feast/feast_repo_remote");
    std::fs::create_dir_all(dest).unwrap();
    for f in ["feature_repo.py", ".feastignore"] {
        std::fs::copy(src.join(f), dest.join(f)).unwrap();
    }
    let make_data = root.join("e2e/feast/feast_repo/make_data.py");
    let out = feast_script(python, &[make_data.to_str().unwrap(), dest.to_str().unwrap()]);
    assert_success("make_data.py", &out);
    let yaml = std::fs::read_to_string(src.join("feature_store.yaml.tmpl"))
        .unwrap()
        .replace("${PROJECT}", "growth")
        .replace("${REGISTRY_ADDR}", addr);
    std::fs::write(dest.join("feature_store.yaml"), yaml).unwrap();
}

fn larder_json(registry: &str, project: &str, args: &[&str]) -> Value {
    let mut all = vec!["--registry", registry, "--project", project];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&larder_ok(&all)).expect("larder prints JSON")
}

fn names(list: &Value, key: &str) -> Vec<String> {
    let mut v: Vec<String> = list
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|o| o["spec"][key].as_str().unwrap_or_default().to_string())
        .collect();
    v.sort();
    v
}

/// What `feast apply` (through the server) stored, read by `larder` from
/// the database directly.
fn check_larder_reads(registry: &str) {
    let fvs = larder_json(registry, "growth", &["ls", "featureviews"]);
    assert_eq!(names(&fvs, "name"), ["customer_profile"], "{fvs}");
    let fv = &fvs[0];
    assert_eq!(fv["spec"]["entities"], serde_json::json!(["customer"]));
    assert_eq!(fv["spec"]["ttl"], "2h");
    assert_eq!(fv["spec"]["tags"]["owner"], "growth");

    // check_remote_registry.py deleted what it added (merchant, writer).
    let entities = larder_json(registry, "growth", &["ls", "entities"]);
    assert_eq!(names(&entities, "joinKey"), ["customer_id"], "{entities}");
    let sources = larder_json(registry, "growth", &["ls", "datasources"]);
    assert_eq!(
        names(&sources, "name"),
        ["customer_source", "order_request"],
        "{sources}"
    );
    let services = larder_json(registry, "growth", &["ls", "featureservices"]);
    assert_eq!(names(&services, "name"), ["customer_service"], "{services}");
    let perms = larder_json(registry, "growth", &["ls", "permissions"]);
    assert_eq!(perms.as_array().unwrap().len(), 1, "{perms}");
    assert_eq!(perms[0]["metadata"]["name"], "reader");
    assert_eq!(perms[0]["spec"]["policy"]["roles"], serde_json::json!(["analyst"]));

    // On-demand views have no Larder manifest: the table lists them, JSON
    // output leaves them out with a warning, and `get` refuses.
    let table = larder_ok(&[
        "--registry",
        registry,
        "--project",
        "growth",
        "ls",
        "ondemandfeatureviews",
    ]);
    assert!(table.contains("order_vs_avg"), "{table}");
    let out = larder(&[
        "--registry",
        registry,
        "--project",
        "growth",
        "ls",
        "ondemandfeatureviews",
        "-o",
        "json",
    ]);
    assert_success("larder ls ondemandfeatureviews -o json", &out);
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        serde_json::json!([])
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("order_vs_avg") && stderr.contains("stored as Feast protobufs only"),
        "{stderr}"
    );
    let out = larder(&[
        "--registry",
        registry,
        "--project",
        "growth",
        "get",
        "ondemandfeatureview",
        "order_vs_avg",
        "-o",
        "yaml",
    ]);
    assert!(
        !out.status.success(),
        "larder get ondemandfeatureview succeeded: {}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stored as Feast protobufs only"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let table = larder_ok(&["--registry", registry, "--project", "growth", "ls", "featureviews"]);
    assert!(table.contains("customer_profile") && table.contains("7200s"), "{table}");
}

/// The whole round trip against one SQL registry URL (as Larder spells it).
fn round_trip(python: &Path, registry_url: &str, dir: &Path) {
    let total = Instant::now();
    // A short cache TTL: the reverse check writes with `larder apply` behind
    // the server's back, and check_registry.py also lists with allow_cache=True
    // (the Python server's cache would be just as stale within its TTL).
    let cfg = dir.join("larder.yaml");
    std::fs::write(
        &cfg,
        format!("project: growth\nregistry:\n  registry_type: sql\n  path: {registry_url}\n  cache_ttl_seconds: 1\n"),
    )
    .unwrap();
    let server = start_registry_server(&cfg, dir.join("server.log"), Verbosity::Default, 0);

    let repo = dir.join("growth");
    prepare_repo(python, &repo, &addr(&server));

    let out = feast_cli(python, &repo, &["apply"], &server);
    for what in [
        "Created entity customer",
        "Created feature view customer_profile",
        "Created on demand feature view order_vs_avg",
        "Created feature service customer_service",
        "Created permission reader",
    ] {
        assert!(out.contains(what), "feast apply: no {what:?} in\n{out}");
    }
    let out = feast_cli(python, &repo, &["feature-views", "list"], &server);
    assert!(
        out.contains("customer_profile") && out.contains("order_vs_avg") && out.contains("OnDemandFeatureView"),
        "feast feature-views list:\n{out}"
    );
    let out = feast_cli(python, &repo, &["entities", "list"], &server);
    assert!(
        out.contains("customer") && out.contains("A customer"),
        "feast entities list:\n{out}"
    );
    assert!(!out.contains("__dummy"), "feast entities list:\n{out}");
    let out = feast_cli(python, &repo, &["materialize", START, END], &server);
    assert!(out.contains("customer_profile"), "feast materialize:\n{out}");
    assert!(
        repo.join("data/online.db").exists(),
        "no SQLite online store after feast materialize"
    );

    let started = Instant::now();
    let out = feast_script(
        python,
        &[
            "e2e/feast/check_remote_registry.py",
            "--repo-dir",
            repo.to_str().unwrap(),
            "--start",
            START,
            "--end",
            END,
        ],
    );
    assert!(
        out.status.success(),
        "check_remote_registry.py failed:\nstdout:\n{}\nstderr:\n{}\nserver log:\n{}",
        text(&out),
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
    assert!(text(&out).contains("OK "), "{}", text(&out));
    eprintln!("check_remote_registry.py took {:.1?}", started.elapsed());

    check_larder_reads(registry_url);

    // Reverse: objects `larder apply` writes are listed by the SDK through the server.
    let manifests = example_dir().join("manifests");
    larder_ok(&[
        "--registry",
        registry_url,
        "--project",
        "driver_stats",
        "apply",
        "-f",
        manifests.to_str().unwrap(),
    ]);
    let ds = dir.join("driver_stats");
    std::fs::create_dir_all(&ds).unwrap();
    std::fs::write(
        ds.join("feature_store.yaml"),
        format!(
            "project: driver_stats\nprovider: local\nregistry:\n  registry_type: remote\n  path: {}\nonline_store:\n  type: sqlite\n  path: data/online.db\noffline_store:\n  type: file\nentity_key_serialization_version: 3\n",
            addr(&server)
        ),
    )
    .unwrap();
    // The expectations of the example, plus the growth project that shares
    // the registry (list_projects() returns every project).
    let mut exp: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("e2e/feast/expectations/driver_stats.json")).unwrap(),
    )
    .unwrap();
    exp["projects"]["growth"] = serde_json::json!({});
    let exp_path = ds.join("expect.json");
    std::fs::write(&exp_path, exp.to_string()).unwrap();
    let started = Instant::now();
    let out = feast_script(
        python,
        &[
            "e2e/feast/check_registry.py",
            "--repo-dir",
            ds.to_str().unwrap(),
            "--expect",
            exp_path.to_str().unwrap(),
            "--var",
            &format!("EXAMPLE_DIR={}", example_dir().display()),
        ],
    );
    assert!(
        out.status.success(),
        "check_registry.py through the server failed:\nstdout:\n{}\nstderr:\n{}\nserver log:\n{}",
        text(&out),
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
    assert!(text(&out).contains("OK "), "{}", text(&out));
    eprintln!("check_registry.py (driver_stats) took {:.1?}", started.elapsed());

    let took = server.terminate(Duration::from_secs(15));
    eprintln!("SIGTERM to exit: {took:.1?}; round trip {:.1?}", total.elapsed());
}

#[tokio::test]
async fn feast_through_registry_server_postgres() {
    let Some(python) = feast_python() else { return };
    let db = PgDatabase::create("larder_cli").await;
    let dir = tempfile::tempdir().unwrap();
    let url = db.postgresql_url();
    let p = python.clone();
    let d = dir.path().to_path_buf();
    // Blocking work (processes, waits) off the runtime; the DB is dropped afterwards either way.
    let r = tokio::task::spawn_blocking(move || round_trip(&p, &url, &d)).await;
    drop(db);
    if let Err(e) = r {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test]
async fn feast_through_registry_server_sqlite() {
    let Some(python) = feast_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:///{}", dir.path().join("registry.db").display());
    let p = python.clone();
    let d = dir.path().to_path_buf();
    let r = tokio::task::spawn_blocking(move || round_trip(&p, &url, &d)).await;
    if let Err(e) = r {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// `larder registry-server` shares the binary's startup: its side port
/// answers `/healthz` and `/metrics` (no Feast needed).
#[test]
fn larder_registry_server_serves_the_side_port() {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicU16, Ordering};

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("larder.yaml");
    let db = dir.path().join("registry.db");
    std::fs::write(
        &cfg,
        format!("registry:\n  registry_type: sql\n  path: sqlite:///{}\n", db.display()),
    )
    .unwrap();
    let get = |port: u16, path: &str| -> Option<String> {
        let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        Some(text)
    };
    // Each attempt picks a fresh side port; readiness is its /healthz.
    let metrics_port = AtomicU16::new(0);
    let cfg_arg = cfg.to_str().unwrap().to_string();
    let server = LarderProcess::start(
        "larder registry-server",
        dir.path().join("server.log"),
        &[
            "LARDER_CONFIG",
            "LARDER_REGISTRY",
            "LARDER_HOST",
            "LARDER_REGISTRY_PORT",
            "LARDER_REGISTRY_METRICS_PORT",
        ],
        |port| {
            let m = free_port();
            metrics_port.store(m, Ordering::SeqCst);
            [
                "-c",
                &cfg_arg,
                "registry-server",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--metrics-port",
                &m.to_string(),
            ]
            .map(String::from)
            .into()
        },
        |_| get(metrics_port.load(Ordering::SeqCst), "/healthz").is_some_and(|t| t.starts_with("HTTP/1.1 200")),
    );
    let m = metrics_port.load(Ordering::SeqCst);
    let health = get(m, "/healthz").unwrap();
    assert!(health.ends_with("\r\n\r\nok"), "{health}");
    let metrics = get(m, "/metrics").unwrap();
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(
        server.log_text().contains(&format!("http://127.0.0.1:{m}/healthz")),
        "{}",
        server.log_text()
    );
    server.terminate(Duration::from_secs(10));
}
