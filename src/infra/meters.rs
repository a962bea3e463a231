//! The names of our metrics, all under one `commerce_` prefix, and their registration at
//! start-up: each is described (`# HELP`), and each counter whose label values are known is
//! created at 0, so that an alert on a rate sees 0 instead of "no data" on a fresh server.
//!
//! The Prometheus exporter shows a series only after its first update; counters are zeroed with
//! `increment(0)`, which leaves a series that another server of the same process already counted
//! as it is. Gauges sampled on scrape (the outbox, the pool) need no zeroing.

use metrics::{describe_counter, describe_gauge, describe_histogram};

pub const GRAPHQL_REQUESTS: &str = "commerce_graphql_requests_total";
pub const GRAPHQL_REQUEST_DURATION: &str = "commerce_graphql_request_duration_seconds";
pub const BUSINESS_OUTCOMES: &str = "commerce_business_outcomes_total";
pub const REVENUE_WON: &str = "commerce_revenue_won_total";
pub const REFUNDED_WON: &str = "commerce_refunded_won_total";
pub const CHARGED_WON: &str = "commerce_charged_won_total";
pub const OUTBOX_PENDING: &str = "commerce_outbox_pending";
pub const OUTBOX_FAILED: &str = "commerce_outbox_failed";
pub const OUTBOX_OLDEST_PENDING_AGE: &str = "commerce_outbox_oldest_pending_age_seconds";
pub const OUTBOX_BREAKER_STATE: &str = "commerce_outbox_breaker_state";
pub const DATA_PLATFORM_MISCONFIGURED: &str = "commerce_data_platform_misconfigured";
pub const DB_POOL_CONNECTIONS: &str = "commerce_db_pool_connections";
pub const DB_STATEMENTS: &str = "commerce_db_statements_total";
pub const BATCH_SIZE: &str = "commerce_batch_size";
pub const BATCH_LOCK_WAIT: &str = "commerce_batch_lock_wait_seconds";
pub const BATCH_SHED: &str = "commerce_batch_shed_total";
pub const WEBSOCKET_CONNECTIONS: &str = "commerce_websocket_connections";
pub const SUBSCRIPTIONS_ACTIVE: &str = "commerce_subscriptions_active";
pub const SHARED_FEEDS: &str = "commerce_shared_subscriptions";
pub const EVENTS_PUBLISHED: &str = "commerce_events_published_total";
pub const EVENTS_COALESCED: &str = "commerce_events_coalesced_total";
pub const EVENT_BUS_REDIS_FAILURES: &str = "commerce_event_bus_redis_failures_total";
pub const VERIFY_VIOLATIONS: &str = "commerce_verify_violations";
pub const VERIFY_LAST_RUN: &str = "commerce_verify_last_run_timestamp_seconds";
pub const VERIFY_DURATION: &str = "commerce_verify_duration_seconds";
pub const REPLICA_LAG: &str = "commerce_replica_lag_seconds";
pub const REPLICA_USABLE: &str = "commerce_replica_usable";

/// A counter with one label whose values are all known: each series exists from start-up.
pub struct CounterFamily {
    pub name: &'static str,
    pub label: &'static str,
    pub values: &'static [&'static str],
}

impl CounterFamily {
    pub fn increment(&self, value: &'static str, by: u64) {
        debug_assert!(
            self.values.contains(&value),
            "{}: {value} is not one of its label values",
            self.name
        );
        metrics::counter!(self.name, self.label => value).increment(by);
    }

    fn zero(&self) {
        for &value in self.values {
            metrics::counter!(self.name, self.label => value).increment(0);
        }
    }
}

/// Delivery attempts to the data platform, by result.
pub const OUTBOX_DELIVERIES: CounterFamily = CounterFamily {
    name: "commerce_outbox_deliveries_total",
    label: "result",
    values: &["sent", "failed", "misdirected", "rejected"],
};

/// Top-sellers reads, served from memory or loaded.
pub const RANKING_CACHE: CounterFamily = CounterFamily {
    name: "commerce_ranking_cache_total",
    label: "result",
    values: &["hit", "miss"],
};

/// Mutations refused by a rate limit, by scope.
pub const RATE_LIMITED: CounterFamily = CounterFamily {
    name: "commerce_rate_limited_total",
    label: "scope",
    values: &["ip", "user"],
};

/// Documents refused by the trusted documents (`TRUSTED_DOCUMENTS`), by how the request named
/// its document.
pub const UNTRUSTED_DOCUMENTS: CounterFamily = CounterFamily {
    name: "commerce_untrusted_documents_total",
    label: "named_by",
    values: &["id", "text"],
};

/// Queries that could go to a read replica (`DATABASE_READ_URL`), by where they ran.
pub const DB_READS: CounterFamily = CounterFamily {
    name: "commerce_db_reads_total",
    label: "target",
    values: &["primary", "replica"],
};

/// Executions of WebSocket operations started: `shared` serves every listener of one public
/// subscription document with the same variables, `own` serves one operation.
pub const SOCKET_EXECUTIONS: CounterFamily = CounterFamily {
    name: "commerce_websocket_executions_total",
    label: "kind",
    values: &["shared", "own"],
};

const FAMILIES: [&CounterFamily; 6] = [
    &OUTBOX_DELIVERIES,
    &RANKING_CACHE,
    &RATE_LIMITED,
    &UNTRUSTED_DOCUMENTS,
    &DB_READS,
    &SOCKET_EXECUTIONS,
];

/// Unlabelled counters, with their help.
const COUNTERS: [(&str, &str); 6] = [
    (REVENUE_WON, "won paid for orders"),
    (REFUNDED_WON, "won refunded"),
    (CHARGED_WON, "won charged to balances"),
    (
        EVENTS_PUBLISHED,
        "events sent to the other instances (Redis pub/sub)",
    ),
    (
        EVENTS_COALESCED,
        "events replaced by a newer one of the same subject before they were sent",
    ),
    (
        EVENT_BUS_REDIS_FAILURES,
        "pipelines of events Redis did not take (kept and retried)",
    ),
];

/// Counters whose series are labelled as they come (described, not zeroed here).
const LABELLED_COUNTERS: &[(&str, &str)] = &[
    (
        GRAPHQL_REQUESTS,
        "GraphQL requests by operation and outcome",
    ),
    (
        BUSINESS_OUTCOMES,
        "mutation outcomes: OK or the user error code",
    ),
    (
        BATCH_SHED,
        "commands a batch writer refused unapplied: its queue was past its bound",
    ),
];

/// Every gauge, with its unit.
const GAUGES: &[(&str, Option<metrics::Unit>, &str)] = &[
    (OUTBOX_PENDING, None, "outbox events waiting for delivery"),
    (OUTBOX_FAILED, None, "outbox events given up on (FAILED)"),
    (
        OUTBOX_OLDEST_PENDING_AGE,
        Some(metrics::Unit::Seconds),
        "age of the oldest PENDING outbox event",
    ),
    (
        OUTBOX_BREAKER_STATE,
        None,
        "data platform circuit breaker: 0 closed, 1 half-open, 2 open",
    ),
    (
        DATA_PLATFORM_MISCONFIGURED,
        None,
        "1 while the data platform answers 401/403/404/405 to every event",
    ),
    (DB_POOL_CONNECTIONS, None, "database connections by state"),
    (DB_STATEMENTS, None, "SQL statements executed since start"),
    (WEBSOCKET_CONNECTIONS, None, "open WebSocket connections"),
    (SUBSCRIPTIONS_ACTIVE, None, "running subscriptions"),
    (
        SHARED_FEEDS,
        None,
        "running shared subscription executions (one per distinct public document)",
    ),
    (
        REPLICA_LAG,
        Some(metrics::Unit::Seconds),
        "how far each read replica's replay is behind the primary",
    ),
    (
        REPLICA_USABLE,
        None,
        "1 while a read replica serves reads, 0 while it is skipped",
    ),
    (
        VERIFY_VIOLATIONS,
        None,
        "rows breaking each invariant at the last periodic verification",
    ),
    (
        VERIFY_LAST_RUN,
        Some(metrics::Unit::Seconds),
        "when the last periodic verification finished (Unix time)",
    ),
    (
        VERIFY_DURATION,
        Some(metrics::Unit::Seconds),
        "how long the last periodic verification took",
    ),
];

/// Every histogram, with its unit.
const HISTOGRAMS: &[(&str, Option<metrics::Unit>, &str)] = &[
    (
        GRAPHQL_REQUEST_DURATION,
        Some(metrics::Unit::Seconds),
        "GraphQL request latency",
    ),
    (
        BATCH_SIZE,
        None,
        "commands per transaction of a batch writer",
    ),
    (
        BATCH_LOCK_WAIT,
        Some(metrics::Unit::Seconds),
        "time a batch writer's transaction took to lock its rows (long: another held them)",
    ),
];

/// Describes every metric and zeroes the counters whose series are all known.
/// `outcomes`: every (mutation, outcome) pair of `commerce_business_outcomes_total`;
/// `invariants`: every `invariant` label of `commerce_verify_violations`.
pub fn register(
    outcomes: impl IntoIterator<Item = (&'static str, &'static str)>,
    invariants: impl IntoIterator<Item = &'static str>,
) {
    for (name, help) in LABELLED_COUNTERS {
        describe_counter!(*name, *help);
    }
    for (name, unit, help) in GAUGES {
        match unit {
            Some(unit) => describe_gauge!(*name, *unit, *help),
            None => describe_gauge!(*name, *help),
        }
    }
    for (name, unit, help) in HISTOGRAMS {
        match unit {
            Some(unit) => describe_histogram!(*name, *unit, *help),
            None => describe_histogram!(*name, *help),
        }
    }
    for writer in ["orders", "coupons"] {
        metrics::counter!(BATCH_SHED, "writer" => writer).increment(0);
    }
    describe_counter!(OUTBOX_DELIVERIES.name, "data platform delivery attempts");
    describe_counter!(RANKING_CACHE.name, "top-sellers reads by cache result");
    describe_counter!(
        SOCKET_EXECUTIONS.name,
        "WebSocket operations executed, shared by many listeners or each its own"
    );
    describe_counter!(RATE_LIMITED.name, "mutations refused by a rate limit");
    describe_counter!(
        UNTRUSTED_DOCUMENTS.name,
        "documents refused because TRUSTED_DOCUMENTS does not list them"
    );
    describe_counter!(
        DB_READS.name,
        "queries that a read replica may serve, by where they ran"
    );
    for (name, help) in COUNTERS {
        describe_counter!(name, help);
        metrics::counter!(name).increment(0);
    }
    for family in FAMILIES {
        family.zero();
    }
    metrics::gauge!(SUBSCRIPTIONS_ACTIVE).increment(0.0);
    for invariant in invariants {
        metrics::gauge!(VERIFY_VIOLATIONS, "invariant" => invariant).increment(0.0);
    }
    for (mutation, outcome) in outcomes {
        metrics::counter!(BUSINESS_OUTCOMES, "mutation" => mutation, "outcome" => outcome)
            .increment(0);
    }
}
