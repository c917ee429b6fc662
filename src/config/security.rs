//! Settings that make the server safe to expose: authentication, request limits and where
//! load may go.

use super::{ConfigError, Env};
use crate::access::{
    AuthMode,
    targets::{DEFAULT_BLOCKED, TargetList, TargetPolicy},
};

/// The shortest `METRIC_VAULT_ADMIN_TOKEN` accepted: a bootstrap secret must not be guessable.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 24;

/// Authentication, limits and target lists.
#[derive(Clone, Debug)]
pub struct SecuritySettings {
    /// `AUTH_MODE`: `token` (default) or `none`.
    pub auth_mode: AuthMode,
    /// `METRIC_VAULT_ADMIN_TOKEN`: an admin token that needs no database row (bootstrap).
    pub admin_token: Option<String>,
    /// `ALLOWED_TARGETS` and `BLOCKED_TARGETS`.
    pub targets: TargetPolicy,
    /// `GRAPHQL_MAX_DEPTH`: the deepest selection a document may nest.
    pub max_query_depth: usize,
    /// `GRAPHQL_MAX_COMPLEXITY`: the most fields a document may select, counted through lists once.
    pub max_query_complexity: usize,
    /// `GRAPHQL_MAX_NESTING`: the deepest `{`/`[`/`(` nesting of a document, before and after
    /// its fragments are expanded.
    pub max_document_nesting: usize,
    /// `GRAPHQL_MAX_TOKENS`: the most lexical tokens a document may have.
    pub max_document_tokens: usize,
    /// `GRAPHQL_MAX_DOCUMENT_BYTES`: the longest document text (values can go in variables).
    pub max_document_bytes: usize,
    /// `GRAPHQL_MAX_CONCURRENT`: GraphQL requests over HTTP executing at once (2 per core: each
    /// may build an answer of up to `max_response_values` values, ~50 MB).
    pub max_concurrent_requests: usize,
    /// `GRAPHQL_MAX_RESPONSE_VALUES`: the most values (fields and list items) one answer holds.
    pub max_response_values: usize,
    /// `GRAPHQL_MAX_UPSTREAM_CALLS`: how many fields that call InfluxDB or the cluster one request runs.
    pub max_upstream_calls: usize,
    /// `GRAPHQL_INTROSPECTION`: whether `__schema`/`__type` answer.
    pub introspection: bool,
    /// `MAX_REQUEST_BYTES`: the largest HTTP request body.
    pub max_request_bytes: usize,
}

impl SecuritySettings {
    pub(super) fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let admin_token = env.optional("METRIC_VAULT_ADMIN_TOKEN");
        if let Some(token) = &admin_token
            && token.chars().count() < MIN_ADMIN_TOKEN_CHARS
        {
            return Err(ConfigError {
                variable: "METRIC_VAULT_ADMIN_TOKEN",
                value: "(hidden)".into(),
                expected: "a secret of at least 24 characters (e.g. `openssl rand -base64 32`)",
            });
        }
        let allowed = env.read_or(
            "ALLOWED_TARGETS",
            None,
            |list| list.parse::<TargetList>().ok().map(Some),
            TARGET_FORMS,
        )?;
        let blocked = env.optional("BLOCKED_TARGETS").unwrap_or_else(|| DEFAULT_BLOCKED.to_owned());
        let blocked = blocked.parse::<TargetList>().map_err(|_| ConfigError {
            variable: "BLOCKED_TARGETS",
            value: blocked.clone(),
            expected: TARGET_FORMS,
        })?;
        Ok(Self {
            auth_mode: env.choice(
                "AUTH_MODE",
                AuthMode::Token,
                &[("token", AuthMode::Token), ("none", AuthMode::None)],
                "one of: token, none",
            )?,
            admin_token,
            targets: TargetPolicy { allowed, blocked },
            max_query_depth: env.parsed("GRAPHQL_MAX_DEPTH", "12", "a whole number of levels")?,
            max_query_complexity: env.parsed("GRAPHQL_MAX_COMPLEXITY", "2000", "a whole number of fields")?,
            max_document_nesting: env.parsed("GRAPHQL_MAX_NESTING", "64", "a whole number of levels")?,
            max_document_tokens: env.parsed("GRAPHQL_MAX_TOKENS", "6000", "a whole number of tokens")?,
            max_document_bytes: env.parsed(
                "GRAPHQL_MAX_DOCUMENT_BYTES",
                "65536",
                "a whole number of bytes",
            )?,
            max_concurrent_requests: env
                .parsed(
                    "GRAPHQL_MAX_CONCURRENT",
                    &(2 * std::thread::available_parallelism().map_or(2, |n| n.get())).to_string(),
                    "a whole number of requests",
                )
                .map(|n: usize| n.max(1))?,
            max_response_values: env.parsed(
                "GRAPHQL_MAX_RESPONSE_VALUES",
                "100000",
                "a whole number of values",
            )?,
            max_upstream_calls: env.parsed("GRAPHQL_MAX_UPSTREAM_CALLS", "8", "a whole number of calls")?,
            introspection: env.choice(
                "GRAPHQL_INTROSPECTION",
                true,
                &[("true", true), ("1", true), ("yes", true), ("false", false), ("0", false), ("no", false)],
                "true or false",
            )?,
            max_request_bytes: env.parsed("MAX_REQUEST_BYTES", "33554432", "a whole number of bytes")?,
        })
    }
}

const TARGET_FORMS: &str =
    "a comma-separated list of host names, *.domain suffixes, addresses, CIDR blocks or *";

#[cfg(test)]
mod tests {
    use crate::access::AuthMode;

    use crate::config::settings_from_pairs as settings;

    #[test]
    fn tokens_are_required_by_default_and_limits_are_set() {
        let s = settings(&[]).unwrap().security;
        assert_eq!(s.auth_mode, AuthMode::Token);
        assert!(s.admin_token.is_none() && s.targets.allowed.is_none() && s.introspection);
        assert_eq!((s.max_query_depth, s.max_query_complexity), (12, 2000));
        assert_eq!(s.max_request_bytes, 32 * 1024 * 1024);
    }

    #[test]
    fn bad_security_values_name_the_variable() {
        for (variable, value) in [
            ("AUTH_MODE", "open"),
            ("METRIC_VAULT_ADMIN_TOKEN", "short"),
            ("ALLOWED_TARGETS", "10.0.0.0/99"),
            ("BLOCKED_TARGETS", "http://x/"),
            ("GRAPHQL_MAX_DEPTH", "deep"),
            ("GRAPHQL_INTROSPECTION", "perhaps"),
        ] {
            let err = settings(&[(variable, value)]).unwrap_err();
            assert_eq!(err.variable, variable);
        }
        // A secret never appears in an error message.
        let err = settings(&[("METRIC_VAULT_ADMIN_TOKEN", "hunter2")]).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
