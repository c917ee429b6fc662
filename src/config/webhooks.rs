//! Settings for webhook deliveries: the server's public address (for links in payloads), how
//! often and how patiently a delivery is tried.

use std::{net::SocketAddr, time::Duration};

use super::{ConfigError, Env};

/// `PUBLIC_BASE_URL` and `WEBHOOK_*`.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookSettings {
    /// `PUBLIC_BASE_URL` without a trailing `/`; None until the server knows its own address
    /// ([`Self::settle_public_base_url`]) when the variable is unset.
    public_base_url: Option<String>,
    /// `WEBHOOK_MAX_ATTEMPTS`: attempts at one delivery before it is FAILED.
    pub max_attempts: u32,
    /// `WEBHOOK_RETRY_SECONDS`: the wait before the second attempt; each later wait is four
    /// times the one before, up to [`Self::MAX_RETRY_DELAY`].
    pub first_retry_delay: Duration,
    /// `WEBHOOK_TIMEOUT_SECONDS`: one attempt's time limit, answer included.
    pub timeout: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            public_base_url: None,
            max_attempts: 8,
            first_retry_delay: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
        }
    }
}

impl WebhookSettings {
    /// The longest wait between two attempts at a delivery.
    pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);

    pub(super) fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let public_base_url = env.read_or(
            "PUBLIC_BASE_URL",
            None,
            |text| {
                let url = url::Url::parse(text).ok()?;
                (matches!(url.scheme(), "http" | "https") && url.has_host())
                    .then(|| Some(text.trim_end_matches('/').to_owned()))
            },
            "the http(s) URL people reach this server at, e.g. https://metric-vault.example.com",
        )?;
        let max_attempts: u32 = env.parsed(
            "WEBHOOK_MAX_ATTEMPTS",
            &defaults.max_attempts.to_string(),
            "a whole number of attempts, 1 to 20",
        )?;
        if !(1..=20).contains(&max_attempts) {
            return Err(ConfigError {
                variable: "WEBHOOK_MAX_ATTEMPTS",
                value: max_attempts.to_string(),
                expected: "a whole number of attempts, 1 to 20",
            });
        }
        Ok(Self {
            public_base_url,
            max_attempts,
            first_retry_delay: Duration::from_secs_f64(env.number(
                "WEBHOOK_RETRY_SECONDS",
                defaults.first_retry_delay.as_secs_f64(),
                |seconds| seconds > 0.0 && seconds <= Self::MAX_RETRY_DELAY.as_secs_f64(),
                "a positive number of seconds, at most 3600",
            )?),
            timeout: Duration::from_secs_f64(env.number(
                "WEBHOOK_TIMEOUT_SECONDS",
                defaults.timeout.as_secs_f64(),
                |seconds| seconds > 0.0 && seconds <= 300.0,
                "a positive number of seconds, at most 300",
            )?),
        })
    }

    /// Where the server's pages are reached, without a trailing `/`: `PUBLIC_BASE_URL`, else
    /// `http://` and the address the server listens on.
    pub fn public_base_url(&self) -> &str {
        self.public_base_url.as_deref().unwrap_or("http://127.0.0.1:8000")
    }

    /// Once the server is bound: with `PUBLIC_BASE_URL` unset, links name the bound address
    /// (`BIND_ADDR` may ask for port 0).
    pub fn settle_public_base_url(&mut self, bound: SocketAddr) {
        self.public_base_url.get_or_insert_with(|| format!("http://{bound}"));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::settings_from_pairs as settings;

    #[test]
    fn links_name_the_bound_address_unless_a_public_url_is_set() {
        let mut webhooks = settings(&[]).unwrap().webhooks;
        webhooks.settle_public_base_url("127.0.0.1:41234".parse().unwrap());
        assert_eq!(webhooks.public_base_url(), "http://127.0.0.1:41234");
        let mut webhooks = settings(&[("PUBLIC_BASE_URL", "https://mv.example.com/")]).unwrap().webhooks;
        webhooks.settle_public_base_url("127.0.0.1:41234".parse().unwrap());
        assert_eq!(webhooks.public_base_url(), "https://mv.example.com");
    }

    #[test]
    fn bad_webhook_values_name_the_variable() {
        for (variable, value) in [
            ("PUBLIC_BASE_URL", "mv.example.com"),
            ("PUBLIC_BASE_URL", "ftp://mv.example.com"),
            ("WEBHOOK_MAX_ATTEMPTS", "0"),
            ("WEBHOOK_MAX_ATTEMPTS", "many"),
            ("WEBHOOK_RETRY_SECONDS", "0"),
            ("WEBHOOK_TIMEOUT_SECONDS", "-1"),
        ] {
            assert_eq!(settings(&[(variable, value)]).unwrap_err().variable, variable, "{variable}={value}");
        }
        let webhooks =
            settings(&[("WEBHOOK_RETRY_SECONDS", "0.2"), ("WEBHOOK_MAX_ATTEMPTS", "3")]).unwrap().webhooks;
        assert_eq!(webhooks.first_retry_delay, Duration::from_millis(200));
        assert_eq!(webhooks.max_attempts, 3);
        assert_eq!(webhooks.timeout, Duration::from_secs(10));
    }
}
