//! The servers' `/metrics` as Prometheus and Grafana see them.
//!
//! `larder apply` the driver-stats example, `larder serve` it, then send
//! reads, pushes and materializations, good and bad, over HTTP, and
//! scrape `/metrics`:
//!
//! - the families Feast 0.67's feature server exports (`feast/metrics.py`)
//!   are there with Feast's types, label names and label values, counted
//!   where Feast counts them;
//! - `promtool check metrics` accepts the text with no lint problem; so it
//!   does for `larder registry-server`'s side port after a few RPCs;
//! - docs/grafana/larder-dashboard.json is a dashboard whose every PromQL
//!   expression (and variable query) names only metrics the two servers
//!   export, covering what operators watch.
//!
//! promtool comes from `LARDER_PROMTOOL` (scripts/test.sh sets it with
//! scripts/promtool.sh) or PATH; without one the lint is skipped, except
//! in CI (`CI` set), where that fails the test.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use larder_protos::feast::registry as fr;
use larder_protos::feast::registry::registry_server_client::RegistryServerClient;
use serde_json::{Value, json};
use support::*;

const VIEW: &str = "driver_hourly_stats";

/// `(name, labels, value)` of every sample, and `name -> type` of every family.
struct Scrape {
    text: String,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
    types: BTreeMap<String, String>,
}

impl Scrape {
    fn parse(text: String) -> Self {
        let mut samples = Vec::new();
        let mut types = BTreeMap::new();
        for line in text.lines() {
            if let Some(t) = line.strip_prefix("# TYPE ") {
                let (name, kind) = t.split_once(' ').expect("# TYPE name kind");
                types.insert(name.to_string(), kind.to_string());
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("sample value");
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, parse_labels(rest.strip_suffix('}').expect("closing brace"))),
                None => (series, BTreeMap::new()),
            };
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
            };
            samples.push((name.to_string(), labels, value));
        }
        Self { text, samples, types }
    }

    /// The value of the one sample named `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<f64> = self
            .samples
            .iter()
            .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
            .map(|(_, _, v)| *v)
            .collect();
        assert!(found.len() <= 1, "{name} {labels:?} matches {} samples", found.len());
        found.first().copied()
    }

    fn must(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{}", self.text))
    }

    /// The label names of the samples of family `family` (histogram samples without `le`).
    fn label_names(&self, family: &str) -> BTreeSet<String> {
        let suffixes = ["", "_bucket", "_sum", "_count"];
        self.samples
            .iter()
            .filter(|(n, _, _)| suffixes.iter().any(|s| *n == format!("{family}{s}")))
            .flat_map(|(_, l, _)| l.keys().filter(|k| *k != "le").cloned())
            .collect()
    }

    fn sample_names(&self) -> BTreeSet<String> {
        self.samples.iter().map(|(n, _, _)| n.clone()).collect()
    }
}

/// `a="x",b="y"` (values as the text format escapes them).
fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (k, after) = rest.split_once("=\"").expect("label=\"value\"");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().expect("closing quote") {
                (_, '\\') => value.push(chars.next().expect("escaped char").1),
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        out.insert(k.trim_start_matches(',').to_string(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    out
}

/// A minimal HTTP/1.1 request: `(status, body)`.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    // Chunked bodies (axum streams some) are joined; others are taken as they are.
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn scrape(port: u16) -> Scrape {
    let (code, body) = http(port, "GET", "/metrics", None);
    assert_eq!(code, 200, "{body}");
    Scrape::parse(body)
}

/// The promtool to lint with; `None` (skip) only outside CI.
fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("LARDER_PROMTOOL")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join("promtool"))
                    .find(|p| p.is_file())
            })
        });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool not found (scripts/promtool.sh installs it; LARDER_PROMTOOL names it)"
        );
        eprintln!("SKIP promtool lint: no promtool (run scripts/promtool.sh, or set LARDER_PROMTOOL)");
    }
    found
}

/// `promtool check metrics < text`: must succeed and report nothing.
fn promtool_check(promtool: &Path, what: &str, text: &str) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics on {what}: {} \n{report}\n--- metrics ---\n{text}",
        out.status
    );
}

/// Feast 0.67's feature-server families (feast/metrics.py): name, type,
/// label names. Transformation durations are left out: Larder has no
/// on-demand feature view transformations.
const FEAST_FAMILIES: &[(&str, &str, &[&str])] = &[
    ("feast_feature_server_cpu_usage", "gauge", &["pid"]),
    ("feast_feature_server_memory_usage", "gauge", &["pid"]),
    ("feast_feature_server_request_total", "counter", &["endpoint", "status"]),
    (
        "feast_feature_server_request_latency_seconds",
        "histogram",
        &["endpoint", "feature_count", "feature_view_count"],
    ),
    ("feast_online_features_request_total", "counter", &[]),
    ("feast_online_features_entity_count", "histogram", &[]),
    (
        "feast_online_features_status_total",
        "counter",
        &["feature_view", "status"],
    ),
    ("feast_push_request_total", "counter", &["push_source", "mode"]),
    (
        "feast_materialization_result_total",
        "counter",
        &["feature_view", "status"],
    ),
    ("feast_materialization_duration_seconds", "histogram", &["feature_view"]),
    (
        "feast_feature_server_online_store_read_duration_seconds",
        "histogram",
        &[],
    ),
    ("feast_feature_freshness_seconds", "gauge", &["feature_view", "project"]),
    ("feast_offline_store_request_total", "counter", &["method", "status"]),
    ("feast_offline_store_request_latency_seconds", "histogram", &["method"]),
    ("feast_offline_store_row_count", "histogram", &["method"]),
];

/// One driver's row for /push (columnar `df`).
fn push_row(id: i64) -> Value {
    json!({
        "driver_id": [id], "conv_rate": [0.5], "acc_rate": [0.75], "avg_daily_trips": [11], "trips_today": [3],
        "rating": [4.5], "earnings_today": [99.5], "online_minutes": [45], "completed_trips": [7], "city": ["Oslo"],
        "is_premium": [true], "event_timestamp": ["2024-01-08T09:00:00"], "created": ["2024-01-08T09:05:00"],
    })
}

fn config(dir: &Path) -> PathBuf {
    let d = dir.display();
    let cfg = dir.join("feature_store.yaml");
    std::fs::write(
        &cfg,
        format!(
            "project: driver_stats\nprovider: local\nregistry:\n  registry_type: sql\n  path: sqlite:///{d}/registry.db\n  cache_ttl_seconds: 5\nonline_store:\n  type: sqlite\n  path: {d}/online.db\noffline_store:\n  type: file\nentity_key_serialization_version: 3\n"
        ),
    )
    .unwrap();
    cfg
}

/// The feature server after reads, pushes and materializations, good and
/// bad: its text as Feast's dashboards read it.
fn feature_server_metrics(dir: &Path, cfg: &Path) -> Scrape {
    let manifests = example_dir().join("manifests");
    larder_ok(&["-c", cfg.to_str().unwrap(), "apply", "-f", manifests.to_str().unwrap()]);
    let server = start_serve(cfg, dir.join("serve.log"));
    let port = server.port;
    let post = |path: &str, body: Value| http(port, "POST", path, Some(&body));

    let (code, body) = post(
        "/materialize",
        json!({"start_ts": "2024-01-01T00:00:00", "end_ts": "2024-01-02T00:00:00", "feature_views": [VIEW]}),
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = post(
        "/materialize-incremental",
        json!({"end_ts": "2024-01-03T00:00:00", "feature_views": [VIEW]}),
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = post(
        "/materialize",
        json!({"start_ts": "2024-01-01T00:00:00", "end_ts": "2024-01-02T00:00:00", "feature_views": ["nope"]}),
    );
    assert_eq!(code, 404, "{body}");
    // Two drivers present, one missing; two features of one view.
    let (code, body) = post(
        "/get-online-features",
        json!({"features": [format!("{VIEW}:conv_rate"), format!("{VIEW}:city")], "entities": {"driver_id": [1001, 1002, 99999]}}),
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = post(
        "/get-online-features",
        json!({"features": ["nope:x"], "entities": {"driver_id": [1001]}}),
    );
    assert_eq!(code, 404, "{body}");
    let (code, body) = http(port, "POST", "/get-online-features", Some(&json!("not an object")));
    assert_eq!(code, 422, "{body}");
    let (code, body) = post(
        "/push",
        json!({"push_source_name": "driver_stats_push", "df": push_row(900_001), "to": "online"}),
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = post("/push", json!({"push_source_name": "nope", "df": push_row(900_002)}));
    assert_eq!(code, 422, "{body}");
    assert_eq!(http(port, "GET", "/nope", None).0, 404);
    assert_eq!(http(port, "GET", "/health", None).0, 200);
    let s = scrape(port);
    drop(server);
    s
}

async fn registry_server_metrics(dir: &Path, cfg: &Path) -> Scrape {
    let metrics_port = free_port();
    let server = start_registry_server(cfg, dir.join("registry-server.log"), Verbosity::Default, metrics_port);
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", server.port))
        .unwrap()
        .connect()
        .await
        .expect("connect to the registry server");
    let mut client = RegistryServerClient::new(channel);
    let views = client
        .list_feature_views(fr::ListFeatureViewsRequest {
            project: "driver_stats".into(),
            allow_cache: true,
            ..Default::default()
        })
        .await
        .expect("ListFeatureViews")
        .into_inner();
    assert!(!views.feature_views.is_empty());
    let missing = client
        .get_feature_view(fr::GetFeatureViewRequest {
            name: "nope".into(),
            project: "driver_stats".into(),
            allow_cache: true,
        })
        .await
        .expect_err("unknown view");
    assert_eq!(missing.code(), tonic::Code::NotFound, "{missing:?}");
    let s = scrape(metrics_port);
    drop(server);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_feasts_lint_clean_and_match_the_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let fs = tokio::task::block_in_place(|| feature_server_metrics(dir.path(), &cfg));

    // Every Feast family, with Feast's type and label names.
    for (name, kind, labels) in FEAST_FAMILIES {
        assert_eq!(
            fs.types.get(*name).map(String::as_str),
            Some(*kind),
            "{name}: type\n{}",
            fs.text
        );
        let want: BTreeSet<String> = labels.iter().map(|l| l.to_string()).collect();
        assert_eq!(fs.label_names(name), want, "{name}: label names");
    }
    // ... counted where Feast counts them.
    let gof = "/get-online-features";
    assert_eq!(
        fs.must(
            "feast_feature_server_request_total",
            &[("endpoint", gof), ("status", "success")]
        ),
        1.0
    );
    assert_eq!(
        fs.must(
            "feast_feature_server_request_total",
            &[("endpoint", gof), ("status", "error")]
        ),
        2.0
    );
    for (endpoint, ok, failed) in [
        ("/push", 1.0, 1.0),
        ("/materialize", 1.0, 1.0),
        ("/materialize-incremental", 1.0, 0.0),
    ] {
        assert_eq!(
            fs.must(
                "feast_feature_server_request_total",
                &[("endpoint", endpoint), ("status", "success")]
            ),
            ok,
            "{endpoint}"
        );
        assert_eq!(
            fs.value(
                "feast_feature_server_request_total",
                &[("endpoint", endpoint), ("status", "error")]
            )
            .unwrap_or(0.0),
            failed,
            "{endpoint}"
        );
    }
    // Only the endpoints Feast instruments.
    for (n, l, _) in &fs.samples {
        if n.starts_with("feast_feature_server_request") {
            let e = l["endpoint"].as_str();
            assert!(
                [gof, "/push", "/materialize", "/materialize-incremental"].contains(&e),
                "{n} {l:?}"
            );
        }
    }
    // The read that resolved its features: Feast's bin and the view count; the others: empty labels.
    assert_eq!(
        fs.must(
            "feast_feature_server_request_latency_seconds_count",
            &[
                ("endpoint", gof),
                ("feature_count", "1-10"),
                ("feature_view_count", "1")
            ]
        ),
        1.0
    );
    assert_eq!(
        fs.must(
            "feast_feature_server_request_latency_seconds_count",
            &[("endpoint", gof), ("feature_count", ""), ("feature_view_count", "")]
        ),
        2.0
    );
    assert!(
        fs.text.contains(r#"le="10"}"#) && fs.text.contains(r#"feature_view_count="1",le="0.005"}"#),
        "Feast's latency buckets"
    );
    assert_eq!(fs.must("feast_online_features_request_total", &[]), 1.0);
    assert_eq!(fs.must("feast_online_features_entity_count_sum", &[]), 3.0);
    assert_eq!(
        fs.must(
            "feast_online_features_status_total",
            &[("feature_view", VIEW), ("status", "present")]
        ),
        4.0
    );
    assert_eq!(
        fs.must(
            "feast_online_features_status_total",
            &[("feature_view", VIEW), ("status", "not_found")]
        ),
        2.0
    );
    assert_eq!(
        fs.must("feast_feature_server_online_store_read_duration_seconds_count", &[]),
        1.0
    );
    assert_eq!(
        fs.must(
            "feast_push_request_total",
            &[("push_source", "driver_stats_push"), ("mode", "online")]
        ),
        1.0
    );
    assert_eq!(
        fs.must(
            "feast_materialization_result_total",
            &[("feature_view", VIEW), ("status", "success")]
        ),
        2.0
    );
    assert_eq!(
        fs.must(
            "feast_materialization_duration_seconds_count",
            &[("feature_view", VIEW)]
        ),
        2.0
    );
    assert_eq!(
        fs.must(
            "feast_offline_store_request_total",
            &[("method", "to_arrow"), ("status", "success")]
        ),
        2.0
    );
    let written = fs.must("larder_materialization_rows_written_total", &[("feature_view", VIEW)]);
    assert!(written > 0.0, "{written}");
    assert!(fs.must("larder_materialization_rows_read_total", &[("feature_view", VIEW)]) >= written);
    assert!(
        fs.must(
            "larder_materialization_last_success_timestamp_seconds",
            &[("feature_view", VIEW)]
        ) > 1.7e9
    );
    // The last interval ended 2024-01-03: over a year ago.
    let fresh = fs.must(
        "feast_feature_freshness_seconds",
        &[("feature_view", VIEW), ("project", "driver_stats")],
    );
    assert!(fresh > 365.0 * 86400.0, "{fresh}");
    let pid = fs.label_names("feast_feature_server_cpu_usage");
    assert!(pid.contains("pid"));
    // Refusals are exported (as 0) before the first one, so rate() works from the start.
    assert_eq!(
        fs.must("larder_auth_failures_total", &[("reason", "unauthenticated")]),
        0.0
    );
    // Larder's own families stay.
    assert!(fs.must("larder_http_requests_total", &[("endpoint", gof), ("status", "200")]) >= 1.0);
    assert!(fs.types.contains_key("larder_http_request_duration_seconds"));

    let rs = registry_server_metrics(dir.path(), &cfg).await;
    assert_eq!(
        rs.must(
            "larder_registry_rpc_total",
            &[("method", "ListFeatureViews"), ("code", "0")]
        ),
        1.0
    );
    assert_eq!(
        rs.must(
            "larder_registry_rpc_total",
            &[("method", "GetFeatureView"), ("code", "5")]
        ),
        1.0
    );

    if let Some(promtool) = promtool() {
        promtool_check(&promtool, "the feature server's /metrics", &fs.text);
        promtool_check(&promtool, "the registry server's side port", &rs.text);
    }

    // The dashboard names only what the servers export.
    let exported: BTreeSet<String> = fs.sample_names().union(&rs.sample_names()).cloned().collect();
    let path = repo_root().join("docs/grafana/larder-dashboard.json");
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let exprs = dashboard_queries(&dash);
    assert!(exprs.len() >= 20, "{} queries", exprs.len());
    let mut used = BTreeSet::new();
    for e in &exprs {
        let names = metric_names(e);
        assert!(!names.is_empty(), "no metric in {e:?}");
        for n in names {
            assert!(
                exported.contains(&n),
                "{}: {n:?} (in {e:?}) is not exported; exported: {exported:?}",
                path.display()
            );
            used.insert(n);
        }
    }
    for needed in [
        "larder_http_requests_total",
        "larder_http_request_duration_seconds_bucket",
        "larder_auth_failures_total",
        "larder_registry_snapshot_age_seconds",
        "larder_registry_stale",
        "larder_plan_cache_entries",
        "feast_materialization_result_total",
        "larder_materialization_rows_written_total",
        "larder_materialization_rows_read_total",
    ] {
        assert!(used.contains(needed), "the dashboard does not show {needed}");
    }
    for q in ["histogram_quantile(0.5,", "histogram_quantile(0.99,"] {
        assert!(exprs.iter().any(|e| e.contains(q)), "no {q} panel");
    }
    check_dashboard_shape(&dash);
}

/// Every PromQL expression of the dashboard's panels, and its variables' queries.
fn dashboard_queries(dash: &Value) -> Vec<String> {
    fn panels<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
        for p in v.as_array().into_iter().flatten() {
            out.push(p);
            panels(&p["panels"], out);
        }
    }
    let mut all = Vec::new();
    panels(&dash["panels"], &mut all);
    let mut out: Vec<String> = all
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .map(|t| t["expr"].as_str().expect("every target has a PromQL expr").to_string())
        .collect();
    for var in dash["templating"]["list"].as_array().into_iter().flatten() {
        if var["type"] == "query" {
            let q = var["query"]["query"]
                .as_str()
                .or(var["query"].as_str())
                .expect("variable query");
            out.push(q.to_string());
        }
    }
    out
}

/// The metric names a PromQL expression selects: identifiers left after
/// dropping label matchers, ranges, strings, grouping clauses, function
/// calls and keywords (Grafana's `label_values(metric, label)` included).
fn metric_names(expr: &str) -> Vec<String> {
    const KEYWORDS: &[&str] = &["bool", "and", "or", "unless", "offset", "inf", "nan"];
    const GROUPING: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];
    // Aggregations may put their grouping first: `sum by (x) (...)`.
    const AGGREGATIONS: &[&str] = &[
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    let skip_to = |from: usize, close: char| -> usize {
        let mut j = from + 1;
        while j < chars.len() && chars[j] != close {
            if chars[j] == '"' {
                j += 1;
                while j < chars.len() && chars[j] != '"' {
                    j += if chars[j] == '\\' { 2 } else { 1 };
                }
            }
            j += 1;
        }
        j + 1
    };
    let mut after_label_values_comma = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '{' => i = skip_to(i, '}'),
            '[' => i = skip_to(i, ']'),
            '"' | '\'' | '`' => i = skip_to(i, c),
            '$' => {
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut j = i;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                let call = j < chars.len() && chars[j] == '(';
                if GROUPING.contains(&word.as_str()) && call {
                    i = skip_to(j, ')');
                } else if word == "label_values" && call {
                    after_label_values_comma = true;
                } else if call
                    || KEYWORDS.contains(&word.to_lowercase().as_str())
                    || AGGREGATIONS.contains(&word.as_str())
                {
                    // A function or a keyword.
                } else if after_label_values_comma && names.len() == 1 {
                    // label_values' second argument is a label name.
                } else {
                    names.push(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// What Grafana needs to import the file: a title and uid, unique panel
/// ids, each panel on the grid with a Prometheus data source from the
/// `datasource` variable.
fn check_dashboard_shape(dash: &Value) {
    assert!(dash["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(dash["uid"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(dash["schemaVersion"].as_i64().is_some());
    let vars: Vec<&str> = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert!(vars.contains(&"datasource"), "{vars:?}");
    let mut ids = BTreeSet::new();
    for p in dash["panels"].as_array().unwrap() {
        let id = p["id"].as_i64().expect("panel id");
        assert!(ids.insert(id), "panel id {id} twice");
        for k in ["h", "w", "x", "y"] {
            assert!(p["gridPos"][k].as_i64().is_some(), "panel {id}: gridPos.{k}");
        }
        if p["type"] != "row" {
            assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()), "panel {id}: title");
            assert_eq!(p["datasource"]["uid"], "${datasource}", "panel {id}");
            assert_eq!(p["datasource"]["type"], "prometheus", "panel {id}");
            assert!(!p["targets"].as_array().unwrap().is_empty(), "panel {id}: no query");
        }
    }
}

#[test]
fn promql_metric_names() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.99, sum by (endpoint, le) (rate(larder_http_request_duration_seconds_bucket{job=~"$job",x="a}b"}[$__rate_interval])))"#
        ),
        ["larder_http_request_duration_seconds_bucket"]
    );
    assert_eq!(
        metric_names("sum(rate(a_total[5m])) / ignoring(x) sum(b_total) > bool 1e3 offset 5m"),
        ["a_total", "b_total"]
    );
    assert_eq!(metric_names("time() - max by (v) (last_success)"), ["last_success"]);
    assert_eq!(
        metric_names("label_values(larder_registry_stale, job)"),
        ["larder_registry_stale"]
    );
}
