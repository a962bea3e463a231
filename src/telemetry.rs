//! Traces over OTLP (OpenTelemetry), on when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, off otherwise. The standard `OTEL_*` variables
//! apply (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_BSP_SCHEDULE_DELAY`, ...); spans go as HTTP/protobuf.
//!
//! What is traced: each HTTP request (a child of the caller's `traceparent` when it sends one),
//! each GraphQL operation, the use cases that touch a store, every database statement (SeaORM's
//! spans), the Redis calls of the coupon gate, each group-commit batch (a span of its own, linked
//! to every request it carried, and each request linked to its batch), and each outbox delivery
//! (a child of the order that wrote the event, whose `traceparent` is kept with the event; the
//! delivery's own `traceparent` is sent to the data platform).

use std::sync::OnceLock;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Whether traces are exported (set once, at start).
pub fn enabled() -> bool {
    PROVIDER.get().is_some()
}

/// The tracing layer that exports spans, when an OTLP endpoint is configured.
pub fn layer<S>() -> anyhow::Result<
    Option<tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>>,
>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    let configured = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()));
    if !configured {
        return Ok(None);
    }
    // the blocking HTTP client may not be made on an async runtime's thread
    let exporter = std::thread::spawn(|| {
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the OTLP exporter could not be built"))??;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("commerce");
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    let tracer = provider.tracer("commerce");
    let _ = PROVIDER.set(provider);
    Ok(Some(tracing_opentelemetry::layer().with_tracer(tracer)))
}

/// Sends the spans still buffered (at exit).
pub fn flush() {
    if let Some(provider) = PROVIDER.get() {
        let _ = provider.force_flush();
    }
}

/// Makes `span` a child of the W3C trace context that `headers` carry (`traceparent`), if any.
pub fn continue_trace(span: &Span, headers: &axum::http::HeaderMap) {
    struct Headers<'a>(&'a axum::http::HeaderMap);
    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|value| value.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|name| name.as_str()).collect()
        }
    }
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// The `traceparent` of `span`, when it is traced.
pub fn traceparent(span: &Span) -> Option<String> {
    struct One(Option<String>);
    impl Injector for One {
        fn set(&mut self, key: &str, value: String) {
            if key == "traceparent" {
                self.0 = Some(value);
            }
        }
    }
    if !enabled() {
        return None;
    }
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut one = One(None);
    TraceContextPropagator::new().inject_context(&context, &mut one);
    one.0
}

/// Makes `span` a child of the trace context in `traceparent` (as [`traceparent`] wrote it).
pub fn continue_from(span: &Span, traceparent: &str) {
    let mut headers = axum::http::HeaderMap::new();
    if let Ok(value) = traceparent.parse() {
        headers.insert("traceparent", value);
        continue_trace(span, &headers);
    }
}

/// Links `batch` to each of `requests` and each of them back to `batch`.
pub fn link_batch<'a>(batch: &Span, requests: impl IntoIterator<Item = &'a Span>) {
    if !enabled() {
        return;
    }
    let batch_context = batch.context().span().span_context().clone();
    for request in requests {
        let request_context = request.context().span().span_context().clone();
        if request_context.is_valid() {
            batch.add_link(request_context);
            request.add_link(batch_context.clone());
        }
    }
}
