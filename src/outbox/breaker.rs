//! A circuit breaker for the data platform: after `threshold` failures in a row it opens and no
//! call is made; after `cool_down` one probe is let through (half-open); its success closes the
//! breaker, its failure opens it again. It keeps the [`Fault`] of the last failure, so that an open
//! breaker tells a platform that is down from one that answers as if the URL were wrong.

use std::time::{Duration, Instant};

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "CLOSED",
            BreakerState::Open => "OPEN",
            BreakerState::HalfOpen => "HALF_OPEN",
        }
    }
}

/// What kind of failure a call came to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// No answer, a timeout, 408, 429 or a 5xx: the platform is down or overloaded.
    Unavailable,
    /// 401, 403, 404 or 405: the URL or the credentials look wrong; waiting will not fix it.
    Misdirected(u16),
}

#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cool_down: Duration,
    failures: u32,
    opened_at: Option<Instant>,
    fault: Option<Fault>,
}

impl CircuitBreaker {
    pub fn new(threshold: u32, cool_down: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cool_down,
            failures: 0,
            opened_at: None,
            fault: None,
        }
    }

    pub fn state(&self) -> BreakerState {
        match self.opened_at {
            None => BreakerState::Closed,
            Some(at) if at.elapsed() >= self.cool_down => BreakerState::HalfOpen,
            Some(_) => BreakerState::Open,
        }
    }

    /// How many calls may be made now: all (closed), one probe (half-open) or none (open).
    pub fn allowance(&self) -> Option<usize> {
        match self.state() {
            BreakerState::Closed => None,
            BreakerState::HalfOpen => Some(1),
            BreakerState::Open => Some(0),
        }
    }

    /// Why the breaker is not closed: the fault of the last failure (`None` while closed).
    pub fn fault(&self) -> Option<Fault> {
        self.opened_at.and(self.fault)
    }

    /// A call succeeded; true when that closed an open breaker.
    pub fn on_success(&mut self) -> bool {
        self.failures = 0;
        self.fault = None;
        self.opened_at.take().is_some()
    }

    /// A call failed; true when that opened a closed breaker.
    pub fn on_failure(&mut self, fault: Fault) -> bool {
        self.failures += 1;
        self.fault = Some(fault);
        let was_open = self.opened_at.is_some();
        if was_open || self.failures >= self.threshold {
            self.opened_at = Some(Instant::now());
        }
        !was_open && self.opened_at.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long enough never to elapse during a test.
    const LONG: Duration = Duration::from_secs(3_600);

    fn failed(breaker: &mut CircuitBreaker, times: u32) {
        for _ in 0..times {
            breaker.on_failure(Fault::Unavailable);
        }
    }

    #[test]
    fn closed_until_the_threshold_of_failures_in_a_row() {
        let mut breaker = CircuitBreaker::new(3, LONG);
        assert_eq!(
            (breaker.state(), breaker.allowance()),
            (BreakerState::Closed, None)
        );
        failed(&mut breaker, 2);
        assert_eq!(
            (breaker.state(), breaker.allowance()),
            (BreakerState::Closed, None)
        );
        breaker.on_failure(Fault::Unavailable);
        assert_eq!(
            (breaker.state(), breaker.allowance()),
            (BreakerState::Open, Some(0))
        );
    }

    #[test]
    fn a_success_resets_the_count_of_failures() {
        let mut breaker = CircuitBreaker::new(3, LONG);
        failed(&mut breaker, 2);
        breaker.on_success();
        failed(&mut breaker, 2);
        assert_eq!(breaker.state(), BreakerState::Closed, "not three in a row");
        breaker.on_failure(Fault::Unavailable);
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[test]
    fn a_threshold_of_zero_opens_on_the_first_failure() {
        let mut breaker = CircuitBreaker::new(0, LONG);
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker.on_failure(Fault::Unavailable);
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[test]
    fn after_the_cool_down_one_probe_is_let_through() {
        let mut breaker = CircuitBreaker::new(1, Duration::from_millis(200));
        breaker.on_failure(Fault::Unavailable);
        assert_eq!(breaker.allowance(), Some(0));
        std::thread::sleep(Duration::from_millis(220));
        assert_eq!(
            (breaker.state(), breaker.allowance()),
            (BreakerState::HalfOpen, Some(1))
        );
    }

    #[test]
    fn a_failed_probe_opens_it_again_for_a_whole_cool_down() {
        let mut breaker = CircuitBreaker::new(5, Duration::from_millis(200));
        failed(&mut breaker, 5);
        std::thread::sleep(Duration::from_millis(220));
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        // one failure is enough in half-open, whatever the threshold
        breaker.on_failure(Fault::Unavailable);
        assert_eq!(
            (breaker.state(), breaker.allowance()),
            (BreakerState::Open, Some(0))
        );
    }

    #[test]
    fn a_successful_probe_closes_it() {
        let mut breaker = CircuitBreaker::new(2, Duration::ZERO);
        failed(&mut breaker, 2);
        assert_eq!(
            breaker.state(),
            BreakerState::HalfOpen,
            "a zero cool-down probes at once"
        );
        breaker.on_success();
        assert_eq!(
            (breaker.state(), breaker.allowance()),
            (BreakerState::Closed, None)
        );
        breaker.on_failure(Fault::Unavailable);
        assert_eq!(
            breaker.state(),
            BreakerState::Closed,
            "the count starts again"
        );
    }

    #[test]
    fn it_tells_when_it_opens_and_closes_and_why_it_is_open() {
        let mut breaker = CircuitBreaker::new(2, Duration::ZERO);
        assert!(!breaker.on_failure(Fault::Misdirected(404)), "one failure");
        assert_eq!(breaker.fault(), None, "closed: no reason to tell");
        assert!(breaker.on_failure(Fault::Misdirected(404)), "opened now");
        assert_eq!(breaker.fault(), Some(Fault::Misdirected(404)));
        assert!(!breaker.on_failure(Fault::Unavailable), "open already");
        assert_eq!(breaker.fault(), Some(Fault::Unavailable), "the last fault");
        assert!(breaker.on_success(), "closed an open breaker");
        assert!(!breaker.on_success(), "closed already");
        assert_eq!(breaker.fault(), None);
    }

    #[test]
    fn states_have_their_graphql_names() {
        assert_eq!(BreakerState::Closed.as_str(), "CLOSED");
        assert_eq!(BreakerState::Open.as_str(), "OPEN");
        assert_eq!(BreakerState::HalfOpen.as_str(), "HALF_OPEN");
    }
}
