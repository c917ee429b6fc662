//! k6's web dashboards of live runs and its HTML reports of ended ones, as the server shows
//! them: the runner whose k6 serves them says where they are ([`super::Runner::live_dashboards`],
//! [`super::Runner::report_file`]); the server proxies them under its own paths.

use std::{net::SocketAddr, sync::Arc};

use tokio::sync::Semaphore;

/// Event streams one run's dashboards serve at once, over all its instances. Each one is a
/// long-lived connection to k6, which encodes every snapshot for it.
pub const MAX_VIEWERS_PER_RUN: usize = 10;

/// One live run's dashboards.
#[derive(Clone, Debug)]
pub struct RunDashboards {
    /// Each instance's dashboard, by instance index: addresses only this machine reaches.
    pub addresses: Vec<SocketAddr>,
    /// Permits for event streams ([`MAX_VIEWERS_PER_RUN`]); a stream holds one while it is open.
    pub viewers: Arc<Semaphore>,
}

/// Where the server serves run `test_id`'s live dashboards (relative to the server).
pub fn dashboard_url(test_id: i64) -> String {
    format!("/runs/{test_id}/dashboard/")
}

/// Where the server serves instance `index`'s exported report (relative to the server).
pub fn k6_report_url(test_id: i64, index: u32) -> String {
    format!("/runs/{test_id}/k6-report/{index}")
}
