//! What k6 itself counted of a run: the exact totals a run is judged on (how they come back
//! from k6 is `k6::counts`).

use serde::{Deserialize, Serialize};

/// Counted figures of a run, an instance or a scenario, as k6 counted them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct K6Counts {
    /// `http_reqs` count.
    pub requests: i64,
    /// `http_req_failed` passes (requests k6 judged failed).
    pub failed_requests: i64,
    /// `iterations` count.
    pub iterations: i64,
    /// `data_sent` count, bytes.
    pub data_sent: i64,
    /// `data_received` count, bytes.
    pub data_received: i64,
}

impl std::ops::Add for K6Counts {
    type Output = Self;
    fn add(self, other: Self) -> Self {
        Self {
            requests: self.requests + other.requests,
            failed_requests: self.failed_requests + other.failed_requests,
            iterations: self.iterations + other.iterations,
            data_sent: self.data_sent + other.data_sent,
            data_received: self.data_received + other.data_received,
        }
    }
}

/// A run's counts, and each scenario's by its k6 key.
pub type RunCounts = (K6Counts, Vec<(String, K6Counts)>);
