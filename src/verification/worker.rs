//! The periodic run inside the server (`VERIFY_INTERVAL_SECS`): each run's violations per
//! invariant, its time and duration go to `/metrics` (`commerce_verify_*`), and its findings to
//! the log.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use super::verify;
use crate::infra::db::Database;
use crate::infra::meters::{VERIFY_DURATION, VERIFY_LAST_RUN, VERIFY_VIOLATIONS};

/// Verifies every `every` until `shutdown` is cancelled.
pub async fn run(db: Database, every: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let report = match verify(&db).await {
            Ok(report) => report,
            Err(err) => {
                tracing::warn!(error = %err, "verification failed to run; retrying next interval");
                continue;
            }
        };
        for finding in &report.findings {
            metrics::gauge!(VERIFY_VIOLATIONS, "invariant" => finding.invariant.name())
                .set(finding.violations as f64);
            if finding.violations > 0 {
                tracing::error!(
                    invariant = finding.invariant.name(),
                    violations = finding.violations,
                    examples = ?finding.examples,
                    "invariant violated"
                );
            }
        }
        metrics::gauge!(VERIFY_DURATION).set(report.took.as_secs_f64());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        metrics::gauge!(VERIFY_LAST_RUN).set(now.as_secs_f64());
    }
}
