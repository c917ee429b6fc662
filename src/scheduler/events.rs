//! Status changes of runs, published by the code that makes them.
//!
//! In one process they travel on a broadcast channel; subscribers that fall behind skip
//! events instead of slowing the publisher. (Fan-out across replicas, through PostgreSQL
//! `LISTEN/NOTIFY`, plugs in here.)

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use crate::domain::TestStatus;

/// Events kept for a slow subscriber before it starts skipping.
const BUFFER: usize = 1024;

/// One transition of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusChange {
    pub test_id: i64,
    pub project_id: i64,
    /// None for the launch itself.
    pub previous: Option<TestStatus>,
    pub status: TestStatus,
    pub at: DateTime<Utc>,
    /// Why, when it is worth saying: a failure reason, "cancelled", the verdict being known.
    pub message: Option<String>,
}

/// Where status changes are published and subscribed to.
#[derive(Clone)]
pub struct StatusBus {
    sender: broadcast::Sender<StatusChange>,
}

impl Default for StatusBus {
    fn default() -> Self {
        Self { sender: broadcast::channel(BUFFER).0 }
    }
}

impl StatusBus {
    /// Sends a change to every current subscriber; nobody listening is fine.
    pub fn publish(&self, change: StatusChange) {
        tracing::debug!(test_id = change.test_id, status = ?change.status, "status change");
        let _ = self.sender.send(change);
    }

    /// Every change published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<StatusChange> {
        self.sender.subscribe()
    }
}
