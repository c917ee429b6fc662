//! How much load one launch may ask for: the budgets `launchLoadTest` checks before anything
//! is written or started.
//!
//! The defaults fit the machine the local runner shares with the server (2 cores): a k6 VU
//! costs roughly 1–5 MB and k6 sends a few thousand simple requests per second per core, so
//! 1,000 VUs and 5,000 iterations/s are about what one k6 host can carry without starving the
//! server beside it. Clusters that spread runs over many pods raise both.

use super::{ConfigError, Env};

/// `MAX_VUS_PER_TEST` unless set.
pub const DEFAULT_MAX_VUS_PER_TEST: u32 = 1_000;
/// `MAX_RATE_PER_TEST` unless set.
pub const DEFAULT_MAX_RATE_PER_TEST: u32 = 5_000;

/// The largest total load one test may put on its targets, over all its scenarios and all the
/// k6 instances it is split across.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadBudget {
    /// `MAX_VUS_PER_TEST`: VUs of the VU executors (peak stage target) plus the VU pools
    /// (`maxVUs`) of the arrival-rate executors.
    pub max_vus: u32,
    /// `MAX_RATE_PER_TEST`: iterations per second of the arrival-rate executors (peak target).
    pub max_rate: u32,
}

impl Default for LoadBudget {
    fn default() -> Self {
        Self { max_vus: DEFAULT_MAX_VUS_PER_TEST, max_rate: DEFAULT_MAX_RATE_PER_TEST }
    }
}

impl LoadBudget {
    pub(super) fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let whole = |variable: &'static str, default: u32, expected: &'static str| {
            let value: u32 = env.parsed(variable, &default.to_string(), expected)?;
            // k6 and the GraphQL input count in i32; 0 would refuse every launch.
            if value == 0 || value > i32::MAX as u32 {
                return Err(ConfigError { variable, value: value.to_string(), expected });
            }
            Ok(value)
        };
        Ok(Self {
            max_vus: whole(
                "MAX_VUS_PER_TEST",
                DEFAULT_MAX_VUS_PER_TEST,
                "a whole number of virtual users from 1 to 2147483647",
            )?,
            max_rate: whole(
                "MAX_RATE_PER_TEST",
                DEFAULT_MAX_RATE_PER_TEST,
                "a whole number of iterations per second from 1 to 2147483647",
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::settings_from_pairs as settings;

    #[test]
    fn budgets_default_to_what_one_k6_host_carries_and_can_be_set() {
        assert_eq!(settings(&[]).unwrap().load_budget, LoadBudget { max_vus: 1_000, max_rate: 5_000 });
        let set = settings(&[("MAX_VUS_PER_TEST", "20000"), ("MAX_RATE_PER_TEST", "1")]).unwrap();
        assert_eq!(set.load_budget, LoadBudget { max_vus: 20_000, max_rate: 1 });
    }

    #[test]
    fn a_budget_that_is_zero_negative_or_past_i32_stops_start_up() {
        for (variable, value) in [
            ("MAX_VUS_PER_TEST", "0"),
            ("MAX_VUS_PER_TEST", "-5"),
            ("MAX_VUS_PER_TEST", "lots"),
            ("MAX_RATE_PER_TEST", "2147483648"),
            ("MAX_RATE_PER_TEST", "1.5"),
        ] {
            let err = settings(&[(variable, value)]).unwrap_err();
            assert_eq!(err.variable, variable, "{value}");
        }
    }
}
