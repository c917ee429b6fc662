//! k6's web dashboard on local runs: every instance serves it on a loopback port of its own
//! while the run is live, and writes k6's HTML report next to the script when it ends.
//!
//! The server proxies the live dashboards (`/runs/{id}/dashboard/`), so the ports never leave
//! this machine; [`LiveDashboards`] is where it finds them. A run is in it from the moment
//! every instance answers until its k6 processes have exited.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use tokio::sync::Semaphore;

use crate::k6::runner::{MAX_VIEWERS_PER_RUN, RunDashboards};

/// How often k6 aggregates a dashboard snapshot. k6's default (10 s) makes a live view lag, and
/// k6 exports no report for a run with too few snapshots.
const SNAPSHOT_PERIOD: &str = "1s";

/// The dashboards of this process's live local runs, by run id.
#[derive(Clone, Default)]
pub struct LiveDashboards(Arc<Mutex<HashMap<i64, RunDashboards>>>);

impl LiveDashboards {
    /// Run `test_id`'s dashboards, while it is live.
    pub fn of(&self, test_id: i64) -> Option<RunDashboards> {
        self.0.lock().expect("dashboards lock").get(&test_id).cloned()
    }

    pub(super) fn open(&self, test_id: i64, addresses: Vec<SocketAddr>) {
        let run = RunDashboards { addresses, viewers: Arc::new(Semaphore::new(MAX_VIEWERS_PER_RUN)) };
        self.0.lock().expect("dashboards lock").insert(test_id, run);
    }

    pub(super) fn close(&self, test_id: i64) {
        if let Some(run) = self.0.lock().expect("dashboards lock").remove(&test_id) {
            run.viewers.close();
        }
    }
}

/// Where instance `index` of run `test_id` writes k6's HTML report, in the scripts folder.
pub fn report_file(work_dir: &Path, test_id: i64, index: u32) -> PathBuf {
    work_dir.join(format!("k6-report-{test_id}-{index}.html"))
}

/// k6's environment for an instance whose dashboard listens on `address` and whose report goes
/// to `report` (with `K6_WEB_DASHBOARD=true`).
pub(super) fn environment(address: SocketAddr, report: &Path) -> [(&'static str, std::ffi::OsString); 5] {
    [
        ("K6_WEB_DASHBOARD_HOST", address.ip().to_string().into()),
        ("K6_WEB_DASHBOARD_PORT", address.port().to_string().into()),
        ("K6_WEB_DASHBOARD_OPEN", "false".into()),
        ("K6_WEB_DASHBOARD_PERIOD", SNAPSHOT_PERIOD.into()),
        ("K6_WEB_DASHBOARD_EXPORT", report.as_os_str().to_owned()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_run_is_gone_and_admits_no_new_viewers() {
        let dashboards = LiveDashboards::default();
        dashboards.open(7, vec!["127.0.0.1:5665".parse().unwrap()]);
        let live = dashboards.of(7).expect("open");
        assert_eq!(live.viewers.available_permits(), MAX_VIEWERS_PER_RUN);

        dashboards.close(7);

        assert!(dashboards.of(7).is_none());
        assert!(live.viewers.try_acquire().is_err(), "a stale copy of the run admits no one");
    }
}
