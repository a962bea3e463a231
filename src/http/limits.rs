//! Rate limits on mutations: per user and per client IP, token buckets (governor). Every mutation
//! field counts (an operation with three aliased mutations takes three tokens). A refused request
//! gets HTTP 429, `Retry-After`, and a RATE_LIMITED error with `retryAfterSeconds`.

use std::net::IpAddr;
use std::num::NonZeroU32;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Checks between two clean-ups of idle keys.
const CLEANUP_EVERY: u64 = 10_000;

#[derive(Clone)]
pub struct MutationLimits {
    per_user: Option<Arc<DefaultKeyedRateLimiter<i64>>>,
    per_ip: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    checks: Arc<AtomicU64>,
}

/// Which limit refused a request, and when to come back.
#[derive(Copy, Clone, Debug)]
pub struct Limited {
    pub scope: &'static str,
    pub retry_after: Duration,
}

fn limiter<K: std::hash::Hash + Eq + Clone>(
    per_sec: u32,
    burst: u32,
) -> Option<Arc<DefaultKeyedRateLimiter<K>>> {
    let rate = NonZeroU32::new(per_sec)?;
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Some(Arc::new(RateLimiter::keyed(
        Quota::per_second(rate).allow_burst(burst),
    )))
}

impl MutationLimits {
    /// The limits of `RATE_LIMIT_USER_*` and `RATE_LIMIT_IP_*`; a zero rate turns that limit
    /// off.
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Self {
            per_user: limiter(
                settings.limits.rate_limit_user_per_sec,
                settings.limits.rate_limit_user_burst,
            ),
            per_ip: limiter(
                settings.limits.rate_limit_ip_per_sec,
                settings.limits.rate_limit_ip_burst,
            ),
            checks: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Takes `mutations` tokens from the IP's bucket, then from the user's.
    pub fn check(
        &self,
        user_id: Option<i64>,
        ip: Option<IpAddr>,
        mutations: usize,
    ) -> Result<(), Limited> {
        let Some(cells) = NonZeroU32::new(u32::try_from(mutations).unwrap_or(u32::MAX)) else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % CLEANUP_EVERY == CLEANUP_EVERY - 1 {
            if let Some(limiter) = &self.per_user {
                limiter.retain_recent();
            }
            if let Some(limiter) = &self.per_ip {
                limiter.retain_recent();
            }
        }
        if let (Some(limiter), Some(ip)) = (&self.per_ip, ip) {
            take(limiter, &ip, cells, "ip")?;
        }
        if let (Some(limiter), Some(user)) = (&self.per_user, user_id) {
            take(limiter, &user, cells, "user")?;
        }
        Ok(())
    }
}

fn take<K: std::hash::Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
    cells: NonZeroU32,
    scope: &'static str,
) -> Result<(), Limited> {
    // the limiter's own clock: making a new one per check costs a CPUID calibration
    let now = limiter.clock().now();
    match limiter.check_key_n(key, cells) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(not_until)) => Err(Limited {
            scope,
            retry_after: not_until.wait_time_from(now),
        }),
        // more at once than the bucket ever holds: never admitted, whenever it comes back
        Err(_) => Err(Limited {
            scope,
            retry_after: Duration::from_secs(60),
        }),
    }
}
