//! Status changes of runs, published by the code that makes them.
//!
//! Subscribers always read an in-process broadcast channel; subscribers that fall behind
//! skip events instead of slowing the publisher. What feeds that channel depends on the
//! database:
//!
//! - **SQLite** (one server): `publish` sends straight to the channel.
//! - **PostgreSQL** (possibly several replicas): `publish` sends `NOTIFY metric_vault_status`
//!   with the change as JSON, and every replica (this one included) LISTENs on that channel
//!   and forwards what arrives to its own subscribers. A change made on one replica thus
//!   reaches the websockets of all of them, in the order it was published.
//!
//! Notifications are fire-and-forget (PostgreSQL does not keep them for a listener that is
//! reconnecting); a change whose NOTIFY fails is still delivered to this replica's
//! subscribers.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveEnum, DatabaseBackend, DatabaseConnection,
    sqlx::{self, PgPool, postgres::PgListener},
};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::{
    db::pg_notify,
    domain::{TestStatus, integrity::Integrity},
};

/// Events kept for a slow subscriber before it starts skipping.
const BUFFER: usize = 1024;
/// The PostgreSQL channel every replica listens on.
pub const NOTIFY_CHANNEL: &str = "metric_vault_status";
/// NOTIFY payloads must stay under 8000 bytes; a k6 failure reason can be longer.
const MAX_MESSAGE_BYTES: usize = 4000;
/// What is kept of a message however large the integrity figures beside it.
const MIN_MESSAGE_BYTES: usize = 1000;
/// How long start-up waits for the first LISTEN before serving anyway.
const LISTEN_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between attempts to (re)connect the listener.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// NOTIFY attempts before a change is delivered to this replica only.
const NOTIFY_ATTEMPTS: u32 = 3;

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
    /// The run's integrity as of this change; None until its end is recorded with one.
    pub integrity: Option<Integrity>,
}

/// Where status changes are published and subscribed to.
#[derive(Clone)]
pub struct StatusBus {
    local: broadcast::Sender<StatusChange>,
    /// Set on PostgreSQL: changes go out through NOTIFY instead of straight to `local`.
    notify: Option<mpsc::UnboundedSender<StatusChange>>,
}

impl Default for StatusBus {
    /// In-process only: what a single server on SQLite needs.
    fn default() -> Self {
        Self { local: broadcast::channel(BUFFER).0, notify: None }
    }
}

impl StatusBus {
    /// The bus for a server on `db`: in-process on SQLite; on PostgreSQL, relayed through
    /// `LISTEN/NOTIFY` so that every replica on the same database sees every change.
    /// Returns once this replica listens (or after a bounded wait, logged, if it cannot yet).
    pub async fn for_database(db: &DatabaseConnection) -> Self {
        if db.get_database_backend() != DatabaseBackend::Postgres {
            return Self::default();
        }
        let pool = db.get_postgres_connection_pool().clone();
        let bus = Self::default();
        let (listening_tx, listening_rx) = oneshot::channel();
        tokio::spawn(relay_notifications(pool.clone(), bus.local.clone(), listening_tx));
        if tokio::time::timeout(LISTEN_READY_TIMEOUT, listening_rx).await.is_err() {
            tracing::warn!("not yet listening for status changes of other replicas; still trying");
        }
        let (notify_tx, notify_rx) = mpsc::unbounded_channel();
        tokio::spawn(send_notifications(pool, notify_rx, bus.local.clone()));
        Self { notify: Some(notify_tx), ..bus }
    }

    /// Sends a change to every current subscriber (of every replica on PostgreSQL);
    /// nobody listening is fine.
    pub fn publish(&self, change: StatusChange) {
        tracing::debug!(test_id = change.test_id, status = ?change.status, "status change");
        match &self.notify {
            // One task sends every NOTIFY of this replica, so they leave in publish order.
            Some(notify) => {
                if let Err(unsent) = notify.send(change) {
                    let _ = self.local.send(unsent.0);
                }
            }
            None => {
                let _ = self.local.send(change);
            }
        }
    }

    /// Every change published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<StatusChange> {
        self.local.subscribe()
    }
}

/// A change as it travels in a NOTIFY payload.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Notification {
    test_id: i64,
    project_id: i64,
    previous: Option<String>,
    status: String,
    at: DateTime<Utc>,
    message: Option<String>,
    /// Absent in payloads of replicas that predate it.
    #[serde(default)]
    integrity: Option<Integrity>,
}

impl Notification {
    fn from_change(change: &StatusChange) -> Self {
        // The integrity figures (up to ~4 KB for 64 instances) share the payload with the message.
        let integrity_bytes =
            change.integrity.as_ref().map_or(0, |i| serde_json::to_string(i).map_or(0, |text| text.len()));
        let message_limit = MAX_MESSAGE_BYTES.saturating_sub(integrity_bytes).max(MIN_MESSAGE_BYTES);
        Self {
            test_id: change.test_id,
            project_id: change.project_id,
            previous: change.previous.map(|status| status.to_value()),
            status: change.status.to_value(),
            at: change.at,
            message: change.message.as_deref().map(|text| truncate(text, message_limit)),
            integrity: change.integrity.clone(),
        }
    }

    fn into_change(self) -> Option<StatusChange> {
        let status = |name: String| TestStatus::try_from_value(&name).ok();
        Some(StatusChange {
            test_id: self.test_id,
            project_id: self.project_id,
            previous: match self.previous {
                Some(name) => Some(status(name)?),
                None => None,
            },
            status: status(self.status)?,
            at: self.at,
            message: self.message,
            integrity: self.integrity,
        })
    }
}

/// At most `limit` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let cut = (0..=limit).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    format!("{}…", &text[..cut])
}

/// Sends this replica's changes as NOTIFY, one after another.
async fn send_notifications(
    pool: PgPool,
    mut changes: mpsc::UnboundedReceiver<StatusChange>,
    local: broadcast::Sender<StatusChange>,
) {
    while let Some(change) = changes.recv().await {
        if let Err(err) = notify(&pool, &change).await {
            tracing::warn!(test_id = change.test_id, error = %err, "NOTIFY failed; only this replica hears of the change");
            let _ = local.send(change);
        }
    }
}

#[tracing::instrument(skip_all, fields(test_id = change.test_id))]
async fn notify(pool: &PgPool, change: &StatusChange) -> Result<(), sqlx::Error> {
    let payload =
        serde_json::to_string(&Notification::from_change(change)).expect("a status change always serialises");
    let mut attempt = 1;
    loop {
        let sent = pg_notify(pool, NOTIFY_CHANNEL, &payload).await;
        match sent {
            Ok(_) => return Ok(()),
            Err(err) if attempt < NOTIFY_ATTEMPTS && !pool.is_closed() => {
                tracing::debug!(attempt, error = %err, "NOTIFY failed; retrying");
                attempt += 1;
                tokio::time::sleep(RECONNECT_DELAY).await;
            }
            Err(err) => return Err(err),
        }
    }
}

/// LISTENs for every replica's changes and hands them to this replica's subscribers;
/// reconnects when the connection drops, and stops when the pool closes (shutdown).
async fn relay_notifications(
    pool: PgPool,
    local: broadcast::Sender<StatusChange>,
    listening: oneshot::Sender<()>,
) {
    let mut listening = Some(listening);
    while !pool.is_closed() {
        let mut listener = match listen(&pool).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(error = %err, "could not LISTEN for status changes; retrying");
                tokio::time::sleep(RECONNECT_DELAY).await;
                continue;
            }
        };
        if let Some(ready) = listening.take() {
            let _ = ready.send(());
        }
        loop {
            match listener.recv().await {
                Ok(notification) => {
                    match serde_json::from_str::<Notification>(notification.payload())
                        .ok()
                        .and_then(Notification::into_change)
                    {
                        Some(change) => {
                            let _ = local.send(change);
                        }
                        None => tracing::warn!(
                            payload = notification.payload(),
                            "ignoring an unreadable status notification"
                        ),
                    }
                }
                Err(sqlx::Error::PoolClosed) => return,
                Err(err) => {
                    tracing::warn!(error = %err, "lost the status-change listener; reconnecting");
                    break;
                }
            }
        }
    }
}

async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(NOTIFY_CHANNEL).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(message: Option<String>) -> StatusChange {
        StatusChange {
            test_id: 42,
            project_id: 7,
            previous: Some(TestStatus::Running),
            status: TestStatus::Failed,
            at: DateTime::from_timestamp_millis(1_700_000_000_123).unwrap(),
            message,
            integrity: Some(Integrity {
                instances: vec![crate::domain::integrity::InstanceSamples {
                    instance: 0,
                    reported: Some(9),
                    stored: Some(8),
                }],
            }),
        }
    }

    #[test]
    fn a_change_survives_the_notify_payload() {
        let original = change(Some("k6 instance 0 exited".into()));
        let payload = serde_json::to_string(&Notification::from_change(&original)).unwrap();
        assert!(payload.contains(r#""status":"FAILED""#), "{payload}");
        let back = serde_json::from_str::<Notification>(&payload).unwrap().into_change();
        assert_eq!(back, Some(original));
    }

    #[test]
    fn long_messages_are_cut_to_fit_a_notify_payload() {
        let long = "é".repeat(10_000);
        let payload = serde_json::to_string(&Notification::from_change(&change(Some(long)))).unwrap();
        assert!(payload.len() < 8000, "{} bytes", payload.len());
    }

    #[test]
    fn the_widest_integrity_and_a_long_message_still_fit_a_notify_payload() {
        let instances = (0..64)
            .map(|instance| crate::domain::integrity::InstanceSamples {
                instance,
                reported: Some(999_999_999_999),
                stored: Some(999_999_999_998),
            })
            .collect();
        let wide =
            StatusChange { integrity: Some(Integrity { instances }), ..change(Some("é".repeat(10_000))) };
        let payload = serde_json::to_string(&Notification::from_change(&wide)).unwrap();
        assert!(payload.len() < 8000, "{} bytes", payload.len());
        let back = serde_json::from_str::<Notification>(&payload).unwrap().into_change().unwrap();
        assert_eq!(back.integrity, wide.integrity, "the figures travel whole; the message is cut");
    }

    #[test]
    fn unknown_statuses_are_not_read_as_changes() {
        let mut notification = Notification::from_change(&change(None));
        notification.status = "EXPLODED".into();
        assert_eq!(notification.into_change(), None);
    }

    #[tokio::test]
    async fn in_process_subscribers_get_every_change_in_order() {
        let bus = StatusBus::default();
        let mut subscriber = bus.subscribe();
        for status in [TestStatus::Pending, TestStatus::Running, TestStatus::Completed] {
            bus.publish(StatusChange { status, ..change(None) });
        }
        for expected in [TestStatus::Pending, TestStatus::Running, TestStatus::Completed] {
            assert_eq!(subscriber.recv().await.unwrap().status, expected);
        }
    }
}
