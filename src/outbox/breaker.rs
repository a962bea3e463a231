//! A circuit breaker for the data platform: after `threshold` failures in a row it opens and no
//! call is made; after `cool_down` one probe is let through (half-open); its success closes the
//! breaker, its failure opens it again.

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

#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cool_down: Duration,
    failures: u32,
    opened_at: Option<Instant>,
}

impl CircuitBreaker {
    pub fn new(threshold: u32, cool_down: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cool_down,
            failures: 0,
            opened_at: None,
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

    pub fn on_success(&mut self) {
        self.failures = 0;
        self.opened_at = None;
    }

    pub fn on_failure(&mut self) {
        self.failures += 1;
        if self.opened_at.is_some() || self.failures >= self.threshold {
            self.opened_at = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long enough never to elapse during a test.
    const LONG: Duration = Duration::from_secs(3_600);

    fn failed(breaker: &mut CircuitBreaker, times: u32) {
        for _ in 0..times {
            breaker.on_failure();
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
        breaker.on_failure();
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
        breaker.on_failure();
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[test]
    fn a_threshold_of_zero_opens_on_the_first_failure() {
        let mut breaker = CircuitBreaker::new(0, LONG);
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker.on_failure();
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[test]
    fn after_the_cool_down_one_probe_is_let_through() {
        let mut breaker = CircuitBreaker::new(1, Duration::from_millis(200));
        breaker.on_failure();
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
        breaker.on_failure();
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
        breaker.on_failure();
        assert_eq!(
            breaker.state(),
            BreakerState::Closed,
            "the count starts again"
        );
    }

    #[test]
    fn states_have_their_graphql_names() {
        assert_eq!(BreakerState::Closed.as_str(), "CLOSED");
        assert_eq!(BreakerState::Open.as_str(), "OPEN");
        assert_eq!(BreakerState::HalfOpen.as_str(), "HALF_OPEN");
    }
}
