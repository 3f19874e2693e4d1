//! Logging for every binary: lines on stderr, so stdout stays free for
//! command output (`larder get -o json`), filtered by `RUST_LOG`; human
//! readable by default, one JSON object per line with `--log-format json`
//! (`LARDER_LOG_FORMAT=json`) for log collectors; with the `otel` feature and
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are also exported over OTLP
//! ([`init_traced`], [`continue_trace`]; gRPC servers add [`GrpcTraceLayer`]).

use std::str::FromStr;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `2026-01-01T00:00:00Z  INFO target: message key=value`.
    #[default]
    Text,
    /// `{"timestamp":…,"level":"INFO","fields":{"message":…},"target":…,"span":…}`.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("log format {other:?}: use text or json")),
        }
    }
}

/// Installs the global tracing subscriber on stderr, filtered by `RUST_LOG`
/// when it is set and valid, else by `default_level` (`"info"`, `"warn"`,
/// or any `EnvFilter` directive).
///
/// A subscriber that is already installed (a second call, a test harness)
/// is kept.
pub fn init(default_level: &str) {
    init_with(default_level, LogFormat::Text);
}

/// [`init`] with a chosen line format.
pub fn init_with(default_level: &str, format: LogFormat) {
    let _ = install(default_level, format, None);
}

/// What [`init_traced`] started: flush and stop it with [`Tracing::shutdown`]
/// before the Tokio runtime it was started in ends.
#[must_use = "spans are lost unless shut down (flushed) at exit"]
#[derive(Default)]
pub struct Tracing {
    #[cfg(feature = "otel")]
    provider: Option<crate::otel::Provider>,
}

impl Tracing {
    /// Exports the spans still buffered and stops the exporter (waits up to
    /// the exporter's timeout). A no-op when tracing is off.
    pub fn shutdown(self) {
        #[cfg(feature = "otel")]
        if let Some(p) = self.provider {
            crate::otel::shutdown(p);
        }
    }
}

/// [`init_with`], plus OpenTelemetry traces over OTLP/gRPC when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set
/// (and the `otel` feature is on): spans at INFO and above, whatever the log
/// level, go to the collector as `OTEL_SERVICE_NAME` (default: `service`),
/// sampled by `OTEL_TRACES_SAMPLER`/`OTEL_TRACES_SAMPLER_ARG`. Unset: no layer
/// at all. Must be called inside a Tokio runtime (the gRPC exporter's
/// connection lives on it).
pub fn init_traced(default_level: &str, format: LogFormat, service: &str) -> Tracing {
    install(default_level, format, Some(service))
}

fn install(default_level: &str, format: LogFormat, service: Option<&str>) -> Tracing {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    type Boxed = Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>;

    #[allow(unused_mut)]
    let mut guard = Tracing::default();
    #[allow(unused_mut)]
    let mut notes: Vec<String> = Vec::new();
    #[allow(unused_mut)]
    let mut otel: Option<Boxed> = None;
    #[cfg(feature = "otel")]
    if let Some(service) = service {
        match crate::otel::layer(service) {
            Ok(Some((layer, provider, note))) => {
                otel = Some(layer);
                guard.provider = Some(provider);
                notes.extend(note);
            }
            Ok(None) => {}
            Err(e) => notes.push(format!("OpenTelemetry traces are off: {e}")),
        }
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let mut layers: Vec<Boxed> = vec![match format {
        LogFormat::Text => fmt.with_filter(filter).boxed(),
        // With traces on, every enclosing span: a line logged deep inside a
        // request still carries the request span's `trace_id`.
        LogFormat::Json => fmt
            .json()
            .with_current_span(true)
            .with_span_list(otel.is_some())
            .with_filter(filter)
            .boxed(),
    }];
    layers.extend(otel);
    #[cfg(not(feature = "otel"))]
    let _ = service;
    if tracing_subscriber::registry().with(layers).try_init().is_err() {
        // Another subscriber is in place: spans would never reach our layer.
        guard.shutdown();
        return Tracing::default();
    }
    for n in notes {
        tracing::warn!("{n}");
    }
    guard
}

/// Whether spans are exported (an OTLP endpoint was configured and the
/// exporter started). Callers skip building request spans when not.
pub fn tracing_enabled() -> bool {
    #[cfg(feature = "otel")]
    {
        crate::otel::enabled()
    }
    #[cfg(not(feature = "otel"))]
    {
        false
    }
}

/// An INFO span that exists only while traces are exported, else
/// [`tracing::Span::none`]. For spans created on every request: an enabled
/// span costs a slot in the subscriber's registry, its fields formatted by
/// the log layer, and an enter and exit on every poll, although nothing
/// reads it while traces are off (log lines do not need it: the request's
/// outcome is logged by the router).
#[macro_export]
macro_rules! export_span {
    ($($arg:tt)+) => {
        if $crate::telemetry::tracing_enabled() {
            ::tracing::info_span!($($arg)+)
        } else {
            ::tracing::Span::none()
        }
    };
}

/// Makes `span` a child of the caller's trace named by the W3C
/// `traceparent`/`tracestate` headers (or gRPC metadata), and records the
/// span's trace id in its `trace_id` field (declared `Empty` by the caller),
/// so JSON log lines inside it carry it. Call before the span is entered.
/// A no-op while tracing is off.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    #[cfg(feature = "otel")]
    if crate::otel::enabled() {
        crate::otel::continue_trace(span, traceparent, tracestate);
    }
    #[cfg(not(feature = "otel"))]
    let _ = (span, traceparent, tracestate);
}

/// A tower layer for tonic servers: while tracing is on, one span per call
/// (`rpc.service`, `rpc.method`, `rpc.grpc.status_code`), continuing the
/// caller's trace from the `traceparent`/`tracestate` metadata; while it is
/// off, calls pass straight through.
#[cfg(feature = "tonic")]
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcTraceLayer;

#[cfg(feature = "tonic")]
impl<S> tower::Layer<S> for GrpcTraceLayer {
    type Service = GrpcTrace<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcTrace { inner }
    }
}

/// The service [`GrpcTraceLayer`] wraps around each gRPC service.
#[cfg(feature = "tonic")]
#[derive(Clone, Debug)]
pub struct GrpcTrace<S> {
    inner: S,
}

#[cfg(feature = "tonic")]
impl<S, B, RB> tower::Service<tonic::codegen::http::Request<B>> for GrpcTrace<S>
where
    S: tower::Service<tonic::codegen::http::Request<B>, Response = tonic::codegen::http::Response<RB>> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: tonic::codegen::http::Request<B>) -> Self::Future {
        use tracing::Instrument;
        if !tracing_enabled() {
            return Box::pin(self.inner.call(req));
        }
        let path = req.uri().path();
        let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or(("", path));
        let span = tracing::info_span!(
            "gRPC call",
            otel.name = %path.trim_start_matches('/'),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        continue_trace(&span, header("traceparent"), header("tracestate"));
        let fut = self.inner.call(req);
        let record = span.clone();
        Box::pin(
            async move {
                let resp = fut.await;
                // An error answered at once carries grpc-status in the headers; success does in the trailers.
                let code = match &resp {
                    Ok(r) => r
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i64>().ok())
                        .unwrap_or(0),
                    Err(_) => 14,
                };
                record.record("rpc.grpc.status_code", code);
                // Server faults, as OpenTelemetry's RPC conventions count them.
                if matches!(code, 2 | 4 | 12 | 13 | 14 | 15) {
                    record.record("otel.status_code", "ERROR");
                }
                resp
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_init_keeps_the_first_subscriber() {
        super::init("info");
        super::init_with("debug", LogFormat::Json);
        tracing::info!("still logging");
    }

    #[test]
    fn formats_parse() {
        assert_eq!("JSON".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!(" text ".parse::<LogFormat>(), Ok(LogFormat::Text));
        assert!("yaml".parse::<LogFormat>().unwrap_err().contains("text or json"));
    }
}
