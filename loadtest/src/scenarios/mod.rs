//! The scenarios, one module each. Every scenario prepares its own data through the admin API,
//! measures, checks what it expects of the answers, and returns its [`Report`] together with the
//! initial stock of the products it created (for the SQL invariant checks).

use std::collections::BTreeMap;

use crate::client::{Client, ClientOptions};
use crate::report::Report;

pub mod coupon_storm;
pub mod hot_product;
pub mod orders;
pub mod reads;
pub mod subscribers;

/// What every scenario gets from the common flags.
pub struct Context {
    /// The server's base URL, e.g. `http://127.0.0.1:8000`.
    pub url: String,
    /// The shared, pooled client.
    pub client: Client,
    pub client_options: ClientOptions,
    /// Setup requests in flight at once.
    pub setup_concurrency: usize,
    /// Whether the invariants will be checked by SQL afterwards (else scenarios check what they
    /// can through the API).
    pub sql_checks: bool,
}

/// A finished scenario.
pub struct Outcome {
    pub report: Report,
    /// Initial stock of the products the scenario created, by id.
    pub initial_stock: BTreeMap<i64, i64>,
}

/// Warns when `sockets` connections (plus some slack) would not fit under this process's limit
/// of open files (`ulimit -n`).
pub fn warn_about_open_files(sockets: usize) {
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|line| line.starts_with("Max open files"))
                .and_then(|line| line.split_whitespace().nth(3))
                .and_then(|soft| soft.parse::<usize>().ok())
        });
    if let Some(limit) = limit
        && sockets + 100 > limit
    {
        println!(
            "warning: {sockets} connections need more open files than this process may have \
             ({limit}); raise `ulimit -n`"
        );
    }
}
