//! The sender: claims due deliveries, makes one signed attempt at each, records how it went.

use std::{
    error::Error as _,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::Utc;
use sea_orm::DatabaseConnection;
use tokio::{sync::Notify, task::JoinSet};

use super::{signature, target};
use crate::{
    access::targets::{ImportPolicy, TargetRefusal},
    config::WebhookSettings,
    db::{
        entities::{webhook, webhook_delivery},
        repo::{self, webhooks::AttemptRecord},
    },
    openapi::fetch::{GuardedResolver, literal_refusal},
    tls::TrustedRoots,
};

/// How often the sender looks for due deliveries when nothing woke it.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Deliveries one server sends at once.
const MAX_IN_FLIGHT: usize = 16;
/// How much longer than an attempt's time limit its claim lasts (recording it takes a moment).
const CLAIM_MARGIN: Duration = Duration::from_secs(30);
/// The most of a receiver's answer that is read; the start of it is kept with a failure.
const MAX_ANSWER_BYTES: usize = 4096;
/// What is kept of an answer or an error in `lastError`.
const MAX_ERROR_CHARS: usize = 300;

/// What the notifier and its sender share.
pub(super) struct Shared {
    pub(super) db: DatabaseConnection,
    pub(super) settings: WebhookSettings,
    courier: Courier,
    pub(super) instance: String,
    pub(super) wake: Notify,
    pub(super) worker: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The wait before attempt `attempts_made + 1`: `first` after the first failure, four times as
/// long after each further one, never more than an hour.
pub fn retry_delay(first: Duration, attempts_made: u32) -> Duration {
    let factor = 4u32.saturating_pow(attempts_made.saturating_sub(1).min(15));
    first.saturating_mul(factor).min(WebhookSettings::MAX_RETRY_DELAY)
}

/// How one attempt went.
#[derive(Debug, PartialEq)]
enum Attempt {
    /// The receiver answered (any status).
    Answered { status: u16, start_of_answer: String },
    /// No HTTP answer: refused by the policy, network, TLS, time limit.
    NoAnswer { error: String },
}

impl Shared {
    pub(super) fn new(
        db: DatabaseConnection,
        settings: WebhookSettings,
        policy: ImportPolicy,
        roots: &TrustedRoots,
        instance: String,
    ) -> Self {
        let courier = Courier::new(&policy, roots, settings.timeout);
        Self { db, settings, courier, instance, wake: Notify::new(), worker: Mutex::new(None) }
    }

    /// Claims and sends due deliveries until aborted.
    pub(super) async fn run(self: Arc<Self>) {
        let mut sending = JoinSet::new();
        loop {
            let free = MAX_IN_FLIGHT.saturating_sub(sending.len());
            if free > 0 {
                let now = Utc::now();
                let until = now
                    + chrono::Duration::from_std(self.settings.timeout + CLAIM_MARGIN).unwrap_or_default();
                match repo::webhooks::claim_due(&self.db, &self.instance, now, until, free as u64).await {
                    Ok(claimed) => {
                        for (delivery, hook) in claimed {
                            sending.spawn(self.clone().deliver(delivery, hook));
                        }
                    }
                    Err(err) => tracing::warn!(error = ?err, "could not look for due webhook deliveries"),
                }
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POLL_EVERY) => {}
                Some(_) = sending.join_next(), if !sending.is_empty() => {}
            }
        }
    }

    /// One attempt at a claimed delivery, recorded.
    async fn deliver(self: Arc<Self>, delivery: webhook_delivery::Model, hook: webhook::Model) {
        let max = self.settings.max_attempts as i32;
        let record = if !hook.enabled {
            AttemptRecord::Failed { status_code: None, error: "the webhook is disabled".to_owned() }
        } else if delivery.attempts > max {
            // The claim counted an attempt whose sender stopped before recording it.
            AttemptRecord::Failed {
                status_code: delivery.last_status_code,
                error: format!(
                    "gave up after {max} attempts; the server making the last one stopped before it finished"
                ),
            }
        } else {
            let attempt = self.courier.attempt(&delivery, &hook).await;
            judge(attempt, delivery.attempts, &self.settings)
        };
        if let AttemptRecord::Retry { at, .. } = &record {
            let wait = (*at - Utc::now()).to_std().unwrap_or_default();
            if wait < POLL_EVERY {
                // A short back-off (tests') should not wait for the next look.
                let shared = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    shared.wake.notify_one();
                });
            }
        }
        tracing::debug!(delivery_id = delivery.id, ?record, "webhook attempt");
        match repo::webhooks::record_attempt(&self.db, delivery.id, &self.instance, record).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(delivery_id = delivery.id, "a delivery's claim lapsed while it was sent")
            }
            Err(err) => {
                tracing::warn!(delivery_id = delivery.id, error = ?err, "could not record a webhook attempt")
            }
        }
    }
}

/// What an attempt means for the delivery, after `attempts` attempts in all.
fn judge(attempt: Attempt, attempts: i32, settings: &WebhookSettings) -> AttemptRecord {
    let (status_code, error) = match attempt {
        Attempt::Answered { status, .. } if (200..300).contains(&status) => {
            return AttemptRecord::Delivered { status_code: i32::from(status), at: Utc::now() };
        }
        Attempt::Answered { status, start_of_answer } => {
            let error = if start_of_answer.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {start_of_answer}")
            };
            (Some(i32::from(status)), error)
        }
        Attempt::NoAnswer { error } => (None, error),
    };
    if attempts >= settings.max_attempts as i32 {
        return AttemptRecord::Failed { status_code, error };
    }
    let wait = retry_delay(settings.first_retry_delay, attempts.max(1) as u32);
    let at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
    AttemptRecord::Retry { status_code, error, at }
}

/// Makes attempts: one client (no redirects, the policy's resolver, the trusted roots) and
/// one time limit for every attempt.
struct Courier {
    client: reqwest::Client,
    policy: ImportPolicy,
    timeout: Duration,
}

impl Courier {
    fn new(policy: &ImportPolicy, roots: &TrustedRoots, timeout: Duration) -> Self {
        let client = crate::tls::client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver::new(policy.clone())))
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .no_proxy()
            .user_agent(concat!("metric-vault/", env!("CARGO_PKG_VERSION"), " (webhooks)"))
            .tls_backend_preconfigured(roots.client_config())
            .build()
            .expect("a client with a rustls configuration and no proxies always builds");
        Self { client, policy: policy.clone(), timeout }
    }

    /// POSTs the delivery's body to the webhook's URL, signed, within the time limit.
    async fn attempt(&self, delivery: &webhook_delivery::Model, hook: &webhook::Model) -> Attempt {
        let Ok(url) = url::Url::parse(&hook.url) else {
            return Attempt::NoAnswer { error: "the webhook URL is not a valid URL".to_owned() };
        };
        // Names are checked by the client's resolver on every DNS answer; addresses here.
        if let Some(refusal) = literal_refusal(&self.policy, &url) {
            return Attempt::NoAnswer { error: target::refused(&refusal) };
        }
        let timestamp = Utc::now().timestamp();
        let request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(signature::EVENT_HEADER, delivery.event.as_str())
            .header(signature::DELIVERY_HEADER, delivery.id.to_string())
            .header(signature::TIMESTAMP_HEADER, timestamp.to_string())
            .header(
                signature::SIGNATURE_HEADER,
                signature::signature(&hook.secret, timestamp, &delivery.payload),
            )
            .body(delivery.payload.clone());
        let exchange = async {
            let mut response = request.send().await?;
            let status = response.status().as_u16();
            let mut answer = Vec::new();
            while answer.len() < MAX_ANSWER_BYTES
                && let Some(chunk) = response.chunk().await?
            {
                answer.extend_from_slice(&chunk);
            }
            answer.truncate(MAX_ANSWER_BYTES);
            Ok::<_, reqwest::Error>((status, answer))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok((status, answer))) => {
                Attempt::Answered { status, start_of_answer: one_line(&String::from_utf8_lossy(&answer)) }
            }
            Ok(Err(error)) => Attempt::NoAnswer { error: describe(error) },
            Err(_) => {
                Attempt::NoAnswer { error: format!("no answer within {} s", self.timeout.as_secs_f64()) }
            }
        }
    }
}

/// What went wrong below HTTP, without the URL (it may be a secret).
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(refusal) = cause.downcast_ref::<TargetRefusal>() {
            return target::refused(refusal);
        }
        source = cause.source();
    }
    if let Some(problem) = crate::tls::certificate_problem(&error) {
        return format!(
            "the receiver's TLS certificate is not trusted ({problem}); a private CA can be added with TLS_EXTRA_CA_FILE"
        );
    }
    if error.is_timeout() {
        return "no answer in time".to_owned();
    }
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message = cause.to_string();
        source = cause.source();
    }
    one_line(&format!("no answer: {message}"))
}

/// The text on one line, at most [`MAX_ERROR_CHARS`] characters.
fn one_line(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= MAX_ERROR_CHARS {
        return line;
    }
    let mut cut: String = line.chars().take(MAX_ERROR_CHARS).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests;
