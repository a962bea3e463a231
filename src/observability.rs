//! Observability: the Prometheus recorder (served at `/metrics`), the request metrics and one
//! log line per GraphQL request, and the gauges sampled on scrape.
//!
//! The names of the metrics (all `commerce_...`, all in the README) and their registration at
//! start-up are in `infra::meters`.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextRequest,
};
use async_graphql::{Request, Response, ServerResult};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::auth::Viewer;
use crate::infra::meters::{
    BATCH_SIZE, DATA_PLATFORM_MISCONFIGURED, DB_POOL_CONNECTIONS, DB_STATEMENTS,
    GRAPHQL_REQUEST_DURATION, GRAPHQL_REQUESTS, OUTBOX_BREAKER_STATE, OUTBOX_FAILED,
    OUTBOX_OLDEST_PENDING_AGE, OUTBOX_PENDING, WEBSOCKET_CONNECTIONS,
};
use crate::outbox::service::PlatformHealth;

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Buckets of every histogram in seconds (latencies, lock waits).
const BUCKETS: [f64; 14] = [
    0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets of the batch sizes (commands per transaction; the writers cap them at 64 by
/// default, `ORDER_BATCH_MAX` up to more).
const SIZE_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0];

/// The process-wide recorder (installed on first use: the recorder is global).
pub fn prometheus() -> &'static PrometheusHandle {
    PROMETHEUS.get_or_init(|| {
        PrometheusBuilder::new()
            // every histogram has buckets (no client-side summary): quantiles are computed by
            // Prometheus over the sum of every instance's buckets
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
            .expect("valid buckets")
            .set_buckets_for_metric(Matcher::Full(BATCH_SIZE.into()), &SIZE_BUCKETS)
            .expect("valid buckets")
            .install_recorder()
            .expect("the only metrics recorder of the process")
    })
}

/// The id of the HTTP request (from `x-request-id`, or made), for logs.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Measures and logs every GraphQL request.
pub struct RequestObserver;

impl ExtensionFactory for RequestObserver {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RequestObserverExtension {
            operation: Mutex::new(None),
        })
    }
}

struct RequestObserverExtension {
    operation: Mutex<Option<String>>,
}

/// Operation names become label values: keep them short and plain.
fn label(name: Option<&str>) -> String {
    match name {
        None => "anonymous".to_owned(),
        Some(name) => name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect(),
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for RequestObserverExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        if let Ok(mut operation) = self.operation.lock() {
            *operation = Some(label(request.operation_name.as_deref()));
        }
        next.run(ctx, request).await
    }

    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let started = Instant::now();
        let response = next.run(ctx).await;
        let elapsed = started.elapsed();
        let operation = self
            .operation
            .lock()
            .ok()
            .and_then(|mut o| o.take())
            .unwrap_or_else(|| label(None));
        let outcome = match response.errors.first() {
            None => "ok".to_owned(),
            Some(error) => error
                .extensions
                .as_ref()
                .and_then(|ext| ext.get("code"))
                .map_or_else(
                    || "error".to_owned(),
                    |code| code.to_string().trim_matches('"').to_owned(),
                ),
        };
        metrics::counter!(GRAPHQL_REQUESTS, "operation" => operation.clone(), "outcome" => outcome.clone())
            .increment(1);
        metrics::histogram!(GRAPHQL_REQUEST_DURATION, "operation" => operation.clone(), "outcome" => outcome.clone())
            .record(elapsed.as_secs_f64());
        let request_id = ctx
            .data_opt::<RequestId>()
            .map(|id| id.0.as_str())
            .unwrap_or("-");
        let viewer = ctx.data_opt::<Viewer>().copied().unwrap_or_default();
        tracing::info!(
            request_id,
            operation,
            user_id = viewer.user_id,
            admin = viewer.is_admin(),
            outcome,
            elapsed_ms = elapsed.as_secs_f64() * 1_000.0,
            "graphql request"
        );
        response
    }
}

/// Samples the gauges that are cheaper to read on scrape than to keep up to date.
pub async fn sample_gauges(
    state: &crate::state::AppState,
    open_sockets: &std::sync::atomic::AtomicU64,
) {
    let (size, idle) = state.db.pool_usage();
    metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "in_use")
        .set((size as usize).saturating_sub(idle) as f64);
    metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(idle as f64);
    metrics::gauge!(DB_STATEMENTS).set(state.db.statements_executed() as f64);
    metrics::gauge!(WEBSOCKET_CONNECTIONS)
        .set(open_sockets.load(std::sync::atomic::Ordering::Relaxed) as f64);
    match state.outbox.stats().await {
        Ok(stats) => {
            metrics::gauge!(OUTBOX_PENDING).set(stats.pending as f64);
            metrics::gauge!(OUTBOX_FAILED).set(stats.failed as f64);
            let oldest = stats.oldest_pending_at.map_or(0.0, |at| {
                (chrono::Utc::now() - at).num_milliseconds().max(0) as f64 / 1_000.0
            });
            metrics::gauge!(OUTBOX_OLDEST_PENDING_AGE).set(oldest);
            let breaker = match stats.circuit_state {
                "OPEN" => 2.0,
                "HALF_OPEN" => 1.0,
                _ => 0.0,
            };
            metrics::gauge!(OUTBOX_BREAKER_STATE).set(breaker);
            let misdirected = matches!(stats.platform, PlatformHealth::Misdirected(_));
            metrics::gauge!(DATA_PLATFORM_MISCONFIGURED).set(f64::from(u8::from(misdirected)));
        }
        Err(err) => tracing::warn!(%err, "metrics: cannot read the outbox"),
    }
}
