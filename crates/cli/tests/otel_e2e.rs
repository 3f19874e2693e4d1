//! OpenTelemetry traces (issue 12 item 8) against a real OTLP/gRPC receiver:
//! a `TraceService/Export` server built here from the OTLP protobufs.
//!
//! With `OTEL_EXPORTER_OTLP_ENDPOINT` set, `larder serve` continues the
//! caller's trace (W3C `traceparent`): the HTTP request span's parent is the
//! header's span, the registry read (`registry.plan`) and the online read
//! (`online.read`) are its children, and the resource's `service.name` is
//! `OTEL_SERVICE_NAME`; `larder materialize` exports a run span with one
//! child per view. Without the variables nothing is exported and the
//! server works.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use support::*;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";
const OTEL_VARS: [&str; 5] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SERVICE_NAME",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
];

/// Every span received, with its resource's `service.name`.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<(String, Span)>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    AnyValue::StringValue(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                spans.extend(ss.spans.into_iter().map(|s| (service.clone(), s)));
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Receiver {
    /// Serves on a free port of 127.0.0.1; returns its endpoint URL.
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let svc = TraceServiceServer::new(self.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        format!("http://{addr}")
    }

    fn spans(&self) -> Vec<(String, Span)> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits up to 10 s for a span named `name`.
    async fn wait_for(&self, name: &str) {
        for _ in 0..200 {
            if self.spans().iter().any(|(_, s)| s.name == name) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no span {name:?} received; got {:?}", names(&self.spans()));
    }
}

fn names(spans: &[(String, Span)]) -> Vec<String> {
    spans.iter().map(|(_, s)| s.name.clone()).collect()
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            AnyValue::StringValue(s) => s.clone(),
            AnyValue::IntValue(i) => i.to_string(),
            other => format!("{other:?}"),
        })
}

fn larder_env(cfg: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_larder"));
    for v in OTEL_VARS {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().copied())
        .args(["-c", cfg.to_str().unwrap()])
        .args(args)
        .output()
        .expect("run larder")
}

/// POST /get-online-features with optional extra headers: `(status, body)`.
fn get_online_features(port: u16, headers: &[&str]) -> (u16, String) {
    let body = r#"{"features":["driver_hourly_stats:conv_rate"],"entities":{"driver_id":[1001,1002]}}"#;
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "30", "-w", "\n%{http_code}"]);
    cmd.args(["-H", "content-type: application/json"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd
        .args(["--data-binary", body])
        .arg(format!("http://127.0.0.1:{port}/get-online-features"))
        .output()
        .expect("run curl");
    assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_continues_the_callers_trace_over_otlp() {
    let receiver = Receiver::default();
    let endpoint = receiver.start().await;
    let (dir, cfg) = example_repo(ExampleData::Shared);
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_SERVICE_NAME", "larder-test"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        // JSON logs with the request's debug line, which must carry the trace id.
        ("LARDER_LOG_FORMAT", "json"),
        ("RUST_LOG", "info,larder_feature_server=debug"),
    ];

    // Materialization: one run span, a child span per view.
    let out = larder_env(&cfg, &env, &["materialize", "2024-01-01", "2024-01-03"]);
    assert_success("larder materialize", &out);
    receiver.wait_for("materialize.view").await;
    let spans = receiver.spans();
    let run = spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| s.name == "materialize")
        .unwrap_or_else(|| panic!("no materialize span: {:?}", names(&spans)));
    let view = spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| s.name == "materialize.view")
        .unwrap();
    assert_eq!(
        view.parent_span_id, run.span_id,
        "materialize.view is a child of the run"
    );
    assert_eq!(view.trace_id, run.trace_id);
    assert_eq!(attr(view, "view").as_deref(), Some("driver_hourly_stats"));
    receiver.spans.lock().unwrap().clear();

    // Serving: the caller's trace continues.
    let server = start_serve_env(&cfg, dir.path().join("serve.log"), &env, &[]);
    let traceparent = format!("traceparent: 00-{TRACE_ID}-{PARENT_ID}-01");
    let (code, body) = get_online_features(server.port, &[&traceparent, "tracestate: vendor=1"]);
    assert_eq!(code, 200, "{body}");
    // SIGTERM flushes the last spans before the process exits.
    server.terminate(Duration::from_secs(20));
    receiver.wait_for("online.read").await;

    let spans = receiver.spans();
    let ours: Vec<&(String, Span)> = spans
        .iter()
        .filter(|(_, s)| hex::encode(&s.trace_id) == TRACE_ID)
        .collect();
    let find = |name: &str| {
        ours.iter()
            .map(|(_, s)| s)
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name:?} span in trace {TRACE_ID}: {:?}", names(&spans)))
    };
    let request = find("POST /get-online-features");
    assert_eq!(
        hex::encode(&request.parent_span_id),
        PARENT_ID,
        "the request span continues the header's span"
    );
    assert_eq!(attr(request, "http.route").as_deref(), Some("/get-online-features"));
    assert_eq!(attr(request, "http.request.method").as_deref(), Some("POST"));
    assert_eq!(attr(request, "http.response.status_code").as_deref(), Some("200"));
    for child in ["registry.plan", "online.read"] {
        let span = find(child);
        assert_eq!(
            span.parent_span_id, request.span_id,
            "{child} is a child of the request span"
        );
    }
    for (service, s) in &ours {
        assert_eq!(service, "larder-test", "service.name of {}", s.name);
    }

    // The JSON log line of the request names the caller's trace.
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    // stdout (the listening banner) shares the file; the log lines are the JSON objects.
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}")))
        .collect();
    let request_line = lines
        .iter()
        .find(|l| l["fields"]["message"] == "request" && l["fields"]["endpoint"] == "/get-online-features")
        .unwrap_or_else(|| panic!("no request line in the log:\n{log}"));
    assert_eq!(request_line["span"]["trace_id"], TRACE_ID, "{request_line}");
    assert_eq!(request_line["fields"]["status"], 200, "{request_line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_exported_without_an_endpoint() {
    let receiver = Receiver::default();
    let endpoint = receiver.start().await;
    let (dir, cfg) = example_repo(ExampleData::Shared);
    // The receiver's address is known, but no OTEL_* variable names it.
    let _ = endpoint;
    let server = start_serve_env(&cfg, dir.path().join("serve.log"), &[], &OTEL_VARS);
    let traceparent = format!("traceparent: 00-{TRACE_ID}-{PARENT_ID}-01");
    let (code, body) = get_online_features(server.port, &[&traceparent]);
    assert_eq!(code, 200, "{body}");
    server.terminate(Duration::from_secs(20));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(receiver.spans().is_empty(), "exported: {:?}", names(&receiver.spans()));
}
