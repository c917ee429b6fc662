//! Hostile input (issue 14): what an attacker with a VIEWER token, or none, can send, and that
//! the server answers each with an answer or a clear error in bounded time and memory, while
//! `/health` keeps answering.

use std::time::Duration;

use crate::helpers::TestApp;

mod documents;
mod imports;
mod launches;
mod pages;
mod websockets;

/// `/health` answers, quickly: the server is up whatever was sent before.
pub async fn assert_healthy(app: &TestApp) {
    let response = tokio::time::timeout(Duration::from_secs(5), app.client.get(app.url("/health")).send())
        .await
        .expect("/health answers within 5 s")
        .expect("/health answers");
    assert_eq!(response.status(), 200);
}

/// The test process's resident memory in KiB (the server under test runs in it).
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
