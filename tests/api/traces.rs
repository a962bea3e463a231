//! OpenTelemetry traces over OTLP: a server process with `OTEL_EXPORTER_OTLP_ENDPOINT` set
//! exports to a receiver in the test. A `placeOrder` sent with a `traceparent` continues the
//! caller's trace (the HTTP request, the GraphQL operation, the use case); the group-commit
//! batch that carried it is a span of its own with its database statements, linked to the
//! request and the request linked back; the order's outbox delivery continues the request's
//! trace, a child of its use case (the batch only carried it).

use std::collections::HashSet;

use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::json;

use crate::harness::{
    FreshDatabase, MockPlatform, OtlpReceiver, ServerProcess, items, settings_on, sqlite,
};

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const PLACE: &str = "mutation Place($items: [OrderItemInput!]!) { placeOrder(input: {items: $items}) { order { id status } userErrors { code } } }";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a AnyValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_place_order_is_traced_from_the_callers_traceparent_through_its_batch_to_the_platform() {
    let receiver = OtlpReceiver::start().await;
    let platform = MockPlatform::start().await;
    platform.control(json!({ "recover": true })).await;
    let backend = sqlite().await;
    let database = FreshDatabase::create(backend).await;
    let mut settings = settings_on(backend, &database);
    settings.outbox.data_platform_url = Some(platform.events_url());
    let (mut process, server) = ServerProcess::start(backend.name, &settings).await;
    process.kill();
    process.set_env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint);
    process.set_env("OTEL_BSP_SCHEDULE_DELAY", "100");
    process.resume().await;

    let (user, [product]) = server
        .shop("kim", 100_000, [("이어폰", "오디오", 1_000, 10)])
        .await;
    let answer: serde_json::Value = server
        .http
        .post(server.url("/graphql"))
        .header("x-user-id", user.to_string())
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .json(&json!({ "query": PLACE, "variables": { "items": items(&[(product, 1)]) } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer["data"]["placeOrder"]["order"]["status"],
        json!("COMPLETED"),
        "{answer}"
    );

    let in_trace = |spans: &[Span], trace: &str| -> Vec<Span> {
        spans
            .iter()
            .filter(|s| hex(&s.trace_id) == trace)
            .cloned()
            .collect()
    };
    let spans = receiver
        .wait_for("outbox delivery", |spans| {
            spans.iter().any(|s| s.name == "outbox delivery")
        })
        .await;
    let request_trace = in_trace(&spans, CALLER_TRACE);
    let names: HashSet<&str> = request_trace.iter().map(|s| s.name.as_str()).collect();
    for expected in ["POST /graphql", "graphql Place", "place order"] {
        assert!(
            names.contains(expected),
            "{expected} in the caller's trace: {names:?}"
        );
    }
    let http = request_trace
        .iter()
        .find(|s| s.name == "POST /graphql")
        .unwrap();
    assert_eq!(
        hex(&http.parent_span_id),
        CALLER_SPAN,
        "a child of the caller's span"
    );

    // the batch: its own trace, linked to the request and the request to it
    let batch = spans
        .iter()
        .find(|s| {
            s.name == "orders batch" && s.links.iter().any(|l| hex(&l.trace_id) == CALLER_TRACE)
        })
        .unwrap_or_else(|| {
            panic!(
                "a batch linked to the request: {:?}",
                spans
                    .iter()
                    .map(|s| (&s.name, s.links.len()))
                    .collect::<Vec<_>>()
            )
        });
    let linked_back = request_trace
        .iter()
        .any(|s| s.links.iter().any(|l| l.span_id == batch.span_id));
    assert!(linked_back, "the request links to its batch");
    let batch_trace = in_trace(&spans, &hex(&batch.trace_id));
    let statements = batch_trace
        .iter()
        .filter(|s| attribute(s, "db.system").is_some())
        .count();
    assert!(
        statements > 0,
        "the batch's statements are spans of its trace"
    );
    // the delivery continues the request's trace, under its use case
    let delivery = spans.iter().find(|s| s.name == "outbox delivery").unwrap();
    let use_case = request_trace
        .iter()
        .find(|s| s.name == "place order")
        .unwrap();
    assert_eq!(hex(&delivery.trace_id), CALLER_TRACE);
    assert_eq!(delivery.parent_span_id, use_case.span_id);
    database.remove().await;
}
