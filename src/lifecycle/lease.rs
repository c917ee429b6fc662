//! Run ownership across server instances.
//!
//! Every server instance has an id, and a run belongs to the instance that launched it (or that
//! took it over). The owner renews the leases of all its active runs in one statement every
//! third of `RUN_LEASE_SECONDS`; another instance ends or takes over a run only once its lease
//! has expired, with a conditional update that exactly one instance wins. A local run's k6
//! dies with its server (`k6::runner::local`), so a run whose lease lapsed has no k6 behind it
//! and is ended with that reason; a Kubernetes run's Jobs outlive any server, so the instance
//! that takes it over re-attaches to them.
//!
//! A cancel sent to an instance that does not own the run is written on the run
//! (`cancel_requested_at`); the owner looks for such requests every second and cancels
//! through its runner, so the run ends once, CANCELLED, with what was measured.
//!
//! If an instance cannot renew (its database unreachable) for a whole lease, it stops its own
//! local k6 processes: another instance may already have recorded those runs as ended, and the
//! record must stay true.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// How often an owner looks for cancels other instances asked of it.
pub const CANCEL_CHECK_EVERY: Duration = Duration::from_secs(1);

/// This server instance's id: host name, process id and a random part, so two processes on one
/// host (or one restarted with the same pid) never share one.
pub fn instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(32).collect())
        .unwrap_or_else(|_| "host".to_owned());
    let mut random = [0u8; 4];
    getrandom::fill(&mut random).expect("the OS random source");
    format!("{host}-{}-{:08x}", std::process::id(), u32::from_le_bytes(random))
}

/// When a lease taken or renewed at `now` expires.
pub fn expiry(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(15))
}

/// How often leases are renewed: a third of the lease, so two renewals may fail before it lapses.
pub fn renew_every(lease: Duration) -> Duration {
    (lease / 3).max(Duration::from_millis(100))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ_and_renewals_fit_three_times_in_a_lease() {
        assert_ne!(instance_id(), instance_id());
        assert!(instance_id().len() <= 64, "fits owner_instance");
        assert_eq!(renew_every(Duration::from_secs(15)), Duration::from_secs(5));
    }
}
