//! Run ownership across server instances.
//!
//! Every server instance has an id, and a run belongs to the instance that launched it (or that
//! took it over). The owner renews the leases of all its active runs in one statement every
//! third of `RUN_LEASE_SECONDS`; another instance ends or takes over a run only once its lease
//! has expired — or at once, when its owner ran on this host and its process is gone — with a
//! conditional update that exactly one instance wins. k6 outlives its server either way (local
//! processes, `k6::runner::local::adopt`; Kubernetes Jobs), so the instance that takes a run
//! over re-attaches to its k6 and follows it to its end; a run whose k6 cannot be reached is
//! ended with the reason.
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
    let mut random = [0u8; 4];
    getrandom::fill(&mut random).expect("the OS random source");
    format!("{}-{}-{:08x}", host_name(), std::process::id(), u32::from_le_bytes(random))
}

/// This host's name as instance ids carry it.
fn host_name() -> String {
    crate::k6::runner::local::host_name()
        .map(|name| name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(32).collect())
        .unwrap_or_else(|| "host".to_owned())
}

/// Whether instance `owner` is known to be gone: it ran on this host, in another process, and
/// that process no longer exists (killed, crashed). Its runs need not wait for their leases to
/// lapse. An owner elsewhere, or in this very process, is never known to be gone.
pub fn is_gone(owner: &str) -> bool {
    let mut parts = owner.rsplitn(3, '-');
    let (Some(_random), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    host == host_name() && pid != std::process::id() && !process_lives(pid)
}

/// Whether process `pid` exists and has not exited: a zombie (dead, its parent yet to reap it)
/// does not live.
fn process_lives(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "pid (command) state …": the command may hold spaces and parentheses; the state follows the last ')'.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X') | None)
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

    #[test]
    fn an_owner_is_gone_only_when_its_process_on_this_host_is() {
        assert!(!is_gone(&instance_id()), "this process");
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let other = format!("{}-{}-0badcafe", host_name(), child.id());
        assert!(!is_gone(&other), "alive");
        child.kill().unwrap();
        let killed = std::time::Instant::now();
        while !is_gone(&other) {
            // Killed, not reaped yet: a zombie is gone too.
            assert!(killed.elapsed() < Duration::from_secs(5), "a killed process is gone");
            std::thread::sleep(Duration::from_millis(10));
        }
        child.wait().unwrap();
        assert!(is_gone(&other), "killed and reaped");
        assert!(!is_gone(&format!("elsewhere-{}-0badcafe", child.id())), "another host");
        assert!(!is_gone("garbage"));
    }
}
