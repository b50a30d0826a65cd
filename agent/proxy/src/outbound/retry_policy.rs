//! Retry policy: which outcomes a profile retries, the back-off between tries
//! (exponential with full jitter), and retry budgets — tower's `TpsBudget`, one per
//! service and profile, kept across reloads — so that retries add at most the budget's
//! share of load and a failing dependency does not get a retry storm.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mesh_config::schema::{Budget, FULL_WEIGHT, Retry};
use tower::retry::budget::{Budget as _, TpsBudget};

/// How a try ended, as far as retrying goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A response with this status.
    Status(u16),
    /// The connection could not be made.
    ConnectFailure,
    /// The connection or stream broke.
    Reset,
    /// The try's own timeout passed.
    PerTryTimeout,
}

/// Whether `retry` retries `outcome`.
pub fn retries(retry: &Retry, outcome: Outcome) -> bool {
    match outcome {
        Outcome::Status(status) => {
            retry.on_status.contains(&status)
                || u8::try_from(status / 100).is_ok_and(|class| retry.on_class.contains(&class))
        }
        Outcome::ConnectFailure => retry.on_connect_failure,
        Outcome::Reset => retry.on_reset || retry.on_refused_stream,
        // A try that timed out answers 504 to the client: retried like a 504 (Envoy's
        // `5xx` includes per-try timeouts too).
        Outcome::PerTryTimeout => retries(retry, Outcome::Status(504)),
    }
}

/// The delay before retry number `retry_number` (1 for the first retry): uniform in
/// `0..=min(max, base × 2^(n-1))`.
pub fn backoff(retry: &Retry, retry_number: u32) -> Duration {
    let Some(backoff) = retry.backoff else {
        return Duration::ZERO;
    };
    let ceiling = backoff
        .base_us
        .saturating_mul(1u64 << retry_number.saturating_sub(1).min(30))
        .min(backoff.max_us);
    Duration::from_micros(fastrand::u64(..=ceiling))
}

/// Retry budgets by service and profile.
#[derive(Default)]
pub struct Budgets {
    /// By service, then profile (looked up by `&str`: no allocation once made).
    budgets: Mutex<HashMap<String, HashMap<String, Arc<TpsBudget>>>>,
}

/// Deposits go in for every request; a retry withdraws.
pub type SharedBudget = Arc<TpsBudget>;

impl Budgets {
    /// The budget of `service`'s retries under `retry`, if it has one.
    pub fn get(&self, service: &str, retry: &Retry) -> Option<SharedBudget> {
        let budget: Budget = retry.budget?;
        let mut budgets = match self.budgets.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(made) = budgets.get(service).and_then(|b| b.get(&retry.profile)) {
            return Some(Arc::clone(made));
        }
        let percent = budget.ratio_milli as f32 / FULL_WEIGHT as f32;
        let made = Arc::new(TpsBudget::new(
            Duration::from_secs(10),
            budget.min_per_second.ceil() as u32,
            percent,
        ));
        budgets
            .entry(service.to_string())
            .or_default()
            .insert(retry.profile.clone(), Arc::clone(&made));
        Some(made)
    }
}

/// Records a request in a budget.
pub fn deposit(budget: Option<&SharedBudget>) {
    if let Some(budget) = budget {
        budget.deposit();
    }
}

/// Takes one retry from a budget; `true` when allowed (always, without a budget).
pub fn withdraw(budget: Option<&SharedBudget>) -> bool {
    budget.is_none_or(|b| b.withdraw())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_config::schema::Backoff;

    fn profile() -> Retry {
        Retry {
            profile: "careful".into(),
            attempts: 3,
            per_try_timeout_us: Some(100_000),
            on_status: vec![429],
            on_class: vec![5],
            on_reset: true,
            on_connect_failure: true,
            on_refused_stream: false,
            backoff: Some(Backoff {
                base_us: 10_000,
                max_us: 40_000,
            }),
            budget: Some(Budget {
                ratio_milli: 20_000,
                min_per_second: 0.0,
            }),
        }
    }

    #[test]
    fn conditions_follow_the_profile() {
        let p = profile();
        assert!(retries(&p, Outcome::Status(503)));
        assert!(retries(&p, Outcome::Status(429)));
        assert!(!retries(&p, Outcome::Status(404)));
        assert!(retries(&p, Outcome::PerTryTimeout));
        assert!(retries(&p, Outcome::ConnectFailure));
    }

    #[test]
    fn backoff_is_jittered_under_a_growing_ceiling() {
        let p = profile();
        for _ in 0..200 {
            assert!(backoff(&p, 1) <= Duration::from_millis(10));
            assert!(backoff(&p, 2) <= Duration::from_millis(20));
            assert!(backoff(&p, 9) <= Duration::from_millis(40));
        }
    }

    #[tokio::test]
    async fn a_budget_of_20_percent_allows_about_one_retry_in_five() {
        let budgets = Budgets::default();
        let p = profile();
        let budget = budgets.get("ns/a", &p);
        let allowed = (0..100)
            .filter(|_| {
                deposit(budget.as_ref());
                withdraw(budget.as_ref())
            })
            .count();
        assert!(
            (15..=25).contains(&allowed),
            "allowed {allowed} retries of 100"
        );
    }
}
