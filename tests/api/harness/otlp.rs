//! An OTLP/HTTP receiver of traces (`POST /v1/traces`, protobuf), decoded with the
//! `opentelemetry-proto` types: what a server with `OTEL_EXPORTER_OTLP_ENDPOINT` exports.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use super::processes::ProcessGuard;

pub struct OtlpReceiver {
    /// What `OTEL_EXPORTER_OTLP_ENDPOINT` is set to.
    pub endpoint: String,
    spans: Arc<Mutex<Vec<Span>>>,
    _server: ProcessGuard,
}

impl OtlpReceiver {
    pub async fn start() -> Self {
        let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
        let received = spans.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            post(move |body: Bytes| {
                let received = received.clone();
                async move {
                    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                    let mut spans = received.lock().unwrap();
                    for resource in request.resource_spans {
                        for scope in resource.scope_spans {
                            spans.extend(scope.spans);
                        }
                    }
                    (
                        [("content-type", "application/x-protobuf")],
                        Vec::<u8>::new(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            endpoint,
            spans,
            _server: ProcessGuard::task(server),
        }
    }

    /// Waits until the spans received so far satisfy `done`; returns them.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let spans = self.spans.lock().unwrap().clone();
            if done(&spans) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} among the {} spans received: {:?}",
                spans.len(),
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
