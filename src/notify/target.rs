//! Where a webhook may point: an http(s) URL of bounded length whose host the import host policy
//! allows (`IMPORT_ALLOWED_HOSTS`, else `ALLOWED_TARGETS`, else every host but `BLOCKED_TARGETS`),
//! checked by name and by every address the name resolves to — when the webhook is saved, and
//! again by the sender's resolver on every delivery, since DNS answers change.

use url::Url;

use crate::{
    access::targets::{Host, ImportPolicy, TargetRefusal, resolve},
    error::{AppError, AppResult},
};

/// The longest webhook URL accepted.
pub const MAX_URL_CHARS: usize = 2048;

/// Checks a webhook URL given as `field`; returns it parsed.
pub async fn check_url(field: &str, text: &str, policy: &ImportPolicy) -> AppResult<Url> {
    let url = check_syntax(field, text)?;
    let host = url.host_str().unwrap_or_default();
    let addresses = resolve(host).await;
    policy
        .check(&Host::new(host, addresses))
        .map_err(|refusal| AppError::bad_input(field, refused(&refusal)))?;
    Ok(url)
}

/// Everything about the URL that needs no DNS.
fn check_syntax(field: &str, text: &str) -> AppResult<Url> {
    let text = text.trim();
    if text.is_empty() {
        return Err(AppError::bad_input(field, "the webhook URL must not be empty"));
    }
    if text.chars().count() > MAX_URL_CHARS {
        return Err(AppError::bad_input(
            field,
            format!("the webhook URL is longer than {MAX_URL_CHARS} characters"),
        ));
    }
    // The message names what is wrong, never the URL, which may be a secret (Slack's are).
    let url = Url::parse(text).map_err(|error| {
        AppError::bad_input(field, format!("the webhook URL is not a valid URL: {error}"))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(AppError::bad_input(
            field,
            format!("webhooks are sent over http or https only, not `{}:`", url.scheme()),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(AppError::bad_input(field, "the webhook URL has no host"));
    }
    Ok(url)
}

/// Why the policy refuses a host, worded for webhooks.
pub fn refused(refusal: &TargetRefusal) -> String {
    match refusal {
        TargetRefusal::Blocked { host } => format!(
            "{host} is a blocked address (BLOCKED_TARGETS: cloud metadata services by default); \
             webhooks follow the import host policy"
        ),
        TargetRefusal::NotImportable { host }
        | TargetRefusal::NotAllowed { host, .. }
        | TargetRefusal::NotImported { host } => format!(
            "{host} is not a host webhooks may be sent to: they follow the import host policy \
             (IMPORT_ALLOWED_HOSTS, else ALLOWED_TARGETS)"
        ),
    }
}

/// What a caller below OPERATOR sees of a webhook URL: its scheme, host and port, since the rest
/// may be a credential (a Slack incoming-webhook URL is one).
pub fn origin(url: &str) -> String {
    match Url::parse(url) {
        Ok(parsed) => parsed.origin().ascii_serialization(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(text: &str) -> String {
        check_syntax("input.url", text).unwrap_err().message()
    }

    #[test]
    fn a_webhook_url_is_http_or_https_with_a_host_and_bounded() {
        assert!(check_syntax("input.url", " https://hooks.example.com/services/T0/B0/x ").is_ok());
        assert!(refusal("ftp://example.com/x").contains("not `ftp:`"));
        assert!(refusal("file:///etc/passwd").contains("not `file:`"));
        assert!(refusal("hooks.example.com/x").contains("not a valid URL"));
        assert!(refusal("http://").contains("not a valid URL"));
        assert!(refusal("").contains("must not be empty"));
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS));
        assert!(refusal(&long).contains("longer than 2048"));
        assert!(!refusal("https://exa mple.com/secret-token").contains("secret-token"), "never echoed");
    }

    #[test]
    fn viewers_see_the_origin_only() {
        assert_eq!(origin("https://hooks.slack.com/services/T0/B0/XXXX"), "https://hooks.slack.com");
        assert_eq!(origin("http://127.0.0.1:9000/hook?token=x"), "http://127.0.0.1:9000");
        assert_eq!(origin("https://user:pass@example.com:443/x"), "https://example.com");
    }

    #[tokio::test]
    async fn hosts_are_checked_by_the_import_policy_with_what_they_resolve_to() {
        let loopback_one = ImportPolicy::from_targets(
            Some("127.0.0.1".parse().unwrap()),
            &crate::access::targets::TargetPolicy::default(),
        );
        assert!(check_url("input.url", "http://127.0.0.1:9/hook", &loopback_one).await.is_ok());
        for refused in ["http://127.0.0.2:9/hook", "http://[::ffff:127.0.0.2]:9/hook"] {
            let error = check_url("input.url", refused, &loopback_one).await.unwrap_err();
            assert_eq!(error.code(), "BAD_USER_INPUT");
            assert!(error.message().contains("not a host webhooks may be sent to"), "{}", error.message());
        }
        let metadata =
            check_url("input.url", "http://169.254.169.254/latest", &ImportPolicy::default()).await;
        assert!(metadata.unwrap_err().message().contains("blocked address"));
    }
}
