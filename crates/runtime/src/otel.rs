//! OpenTelemetry traces over OTLP/gRPC, configured by the standard
//! variables: `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
//! (unset: off), `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER` and
//! `OTEL_TRACES_SAMPLER_ARG`, `OTEL_SDK_DISABLED`, `OTEL_TRACES_EXPORTER=none`;
//! the exporter's own (`OTEL_EXPORTER_OTLP_HEADERS`, `…_TIMEOUT`, `OTEL_BSP_*`)
//! are read by the SDK.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;

pub(crate) type Provider = SdkTracerProvider;
type Boxed = Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>;

static ENABLED: AtomicBool = AtomicBool::new(false);

pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Whether the environment asks for trace export.
fn configured() -> bool {
    let endpoint = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"));
    let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let none = var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim().eq_ignore_ascii_case("none"));
    endpoint.is_some() && !disabled && !none
}

/// `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` as the specification
/// defines them; unset is `parentbased_always_on`.
pub(crate) fn sampler(name: Option<&str>, arg: Option<&str>) -> Result<Sampler, String> {
    let ratio = || -> Result<f64, String> {
        match arg.map(str::trim).filter(|a| !a.is_empty()) {
            None => Ok(1.0),
            Some(a) => match a.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(format!(
                    "OTEL_TRACES_SAMPLER_ARG {a:?}: expected a ratio between 0 and 1"
                )),
            },
        }
    };
    let name = name.map(|n| n.trim().to_ascii_lowercase()).unwrap_or_default();
    Ok(match name.as_str() {
        "" | "parentbased_always_on" => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatioBased(ratio()?),
        "parentbased_always_off" => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        "parentbased_traceidratio" => Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio()?))),
        other => {
            return Err(format!(
                "OTEL_TRACES_SAMPLER {other:?}: use always_on, always_off, traceidratio, \
                 parentbased_always_on, parentbased_always_off or parentbased_traceidratio"
            ));
        }
    })
}

/// The layer exporting spans (INFO and above) and its provider, or `None`
/// when no endpoint is configured. The third item is a warning to log once
/// logging is up (an invalid sampler, replaced by the default).
pub(crate) fn layer(default_service: &str) -> Result<Option<(Boxed, Provider, Option<String>)>, String> {
    if !configured() {
        return Ok(None);
    }
    let (sampler, note) = match sampler(
        var("OTEL_TRACES_SAMPLER").as_deref(),
        var("OTEL_TRACES_SAMPLER_ARG").as_deref(),
    ) {
        Ok(s) => (s, None),
        Err(e) => (
            Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            Some(format!("{e}; sampling with parentbased_always_on")),
        ),
    };
    // Reads the endpoint, headers, timeout and compression variables.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| format!("cannot build the OTLP exporter: {e}"))?;
    let service = var("OTEL_SERVICE_NAME").unwrap_or_else(|| default_service.to_string());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("larder");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(LevelFilter::INFO)
        .boxed();
    ENABLED.store(true, Ordering::Relaxed);
    Ok(Some((layer, provider, note)))
}

pub(crate) fn shutdown(provider: Provider) {
    ENABLED.store(false, Ordering::Relaxed);
    if let Err(e) = provider.shutdown() {
        eprintln!("warning: OpenTelemetry: cannot flush the last spans: {e}");
    }
}

pub(crate) fn continue_trace(span: &tracing::Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    if let Some(tp) = traceparent {
        let mut carrier = HashMap::with_capacity(2);
        carrier.insert("traceparent".to_string(), tp.to_string());
        if let Some(ts) = tracestate {
            carrier.insert("tracestate".to_string(), ts.to_string());
        }
        let parent = TraceContextPropagator::new().extract(&carrier);
        if parent.span().span_context().is_valid() {
            let _ = span.set_parent(parent);
        }
    }
    let trace_id = span.context().span().span_context().trace_id();
    if trace_id != opentelemetry::trace::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samplers_follow_the_specification() {
        assert!(matches!(sampler(None, None), Ok(Sampler::ParentBased(_))));
        assert!(matches!(sampler(Some("always_on"), None), Ok(Sampler::AlwaysOn)));
        assert!(matches!(sampler(Some(" ALWAYS_OFF "), None), Ok(Sampler::AlwaysOff)));
        assert!(matches!(
            sampler(Some("traceidratio"), Some("0.25")),
            Ok(Sampler::TraceIdRatioBased(r)) if r == 0.25
        ));
        assert!(matches!(
            sampler(Some("traceidratio"), None),
            Ok(Sampler::TraceIdRatioBased(r)) if r == 1.0
        ));
        assert!(matches!(
            sampler(Some("parentbased_always_off"), None),
            Ok(Sampler::ParentBased(_))
        ));
        assert!(matches!(
            sampler(Some("parentbased_traceidratio"), Some("0.5")),
            Ok(Sampler::ParentBased(_))
        ));
        assert!(
            sampler(Some("traceidratio"), Some("2"))
                .unwrap_err()
                .contains("between 0 and 1")
        );
        assert!(sampler(Some("jaeger_remote"), None).unwrap_err().contains("always_on"));
    }
}
