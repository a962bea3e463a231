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
