//! Settings for importing documents: where they may be fetched from and what parsing one may cost.

use std::time::Duration;

use super::{ConfigError, Env};
use crate::access::targets::{DEFAULT_BLOCKED, ImportPolicy, TargetList, TargetPolicy};
use crate::openapi::{FetchLimits, ParseLimits};
use crate::tls::TrustedRoots;

/// `IMPORT_*`.
#[derive(Clone, Debug)]
pub struct ImportSettings {
    /// `IMPORT_ALLOWED_HOSTS` (else `ALLOWED_TARGETS`, else every host), minus `BLOCKED_TARGETS`.
    pub policy: ImportPolicy,
    /// `IMPORT_MAX_VALUES`, `IMPORT_MAX_DEPTH`, `IMPORT_MAX_OUTPUT_MB`, `IMPORT_PARSE_SECONDS`.
    pub parse_limits: ParseLimits,
    /// `IMPORT_FETCH_SECONDS`: a fetch's time limit, which is also when every network-level
    /// failure is answered (see [`crate::openapi::fetch_document`]).
    pub fetch_limits: FetchLimits,
    /// What https fetches trust: the web PKI, plus the CA certificates of `TLS_EXTRA_CA_FILE`.
    pub tls_roots: TrustedRoots,
}

const BUNDLE_FORM: &str = "a readable file of PEM CA certificates (BEGIN CERTIFICATE blocks)";

const HOST_FORMS: &str =
    "a comma-separated list of host names, *.domain suffixes, addresses, CIDR blocks or *";

impl ImportSettings {
    pub(super) fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let list = |variable: &'static str,
                    default: Option<&str>|
         -> Result<Option<TargetList>, ConfigError> {
            let Some(text) = env.optional(variable).or(default.map(str::to_owned)) else {
                return Ok(None);
            };
            text.parse().map(Some).map_err(|_| ConfigError { variable, value: text, expected: HOST_FORMS })
        };
        // The load-test lists are read (and their errors reported) with the security settings;
        // an import policy falls back on them.
        let targets = TargetPolicy {
            allowed: list("ALLOWED_TARGETS", None)?,
            blocked: list("BLOCKED_TARGETS", Some(DEFAULT_BLOCKED))?.unwrap_or_default(),
        };
        let policy = ImportPolicy::from_targets(list("IMPORT_ALLOWED_HOSTS", None)?, &targets);
        let defaults = ParseLimits::DEFAULT;
        let at_least_one = |variable: &'static str, default: usize, expected: &'static str| {
            let value: usize = env.parsed(variable, &default.to_string(), expected)?;
            if value == 0 {
                return Err(ConfigError { variable, value: "0".into(), expected });
            }
            Ok(value)
        };
        let parse_limits = ParseLimits {
            max_values: at_least_one(
                "IMPORT_MAX_VALUES",
                defaults.max_values,
                "a whole number of values (1 or more)",
            )?,
            max_depth: at_least_one(
                "IMPORT_MAX_DEPTH",
                defaults.max_depth,
                "a whole number of levels, 1 to 120",
            )
            .and_then(|depth| {
                // yaml_serde and serde_json stop at 128 levels with a message of their own.
                if depth > 120 {
                    return Err(ConfigError {
                        variable: "IMPORT_MAX_DEPTH",
                        value: depth.to_string(),
                        expected: "a whole number of levels, 1 to 120",
                    });
                }
                Ok(depth)
            })?,
            max_output_bytes: at_least_one(
                "IMPORT_MAX_OUTPUT_MB",
                defaults.max_output_bytes / (1024 * 1024),
                "a whole number of megabytes (1 or more)",
            )?
            .saturating_mul(1024 * 1024),
            max_duration: Duration::from_secs_f64(env.positive(
                "IMPORT_PARSE_SECONDS",
                defaults.max_duration.as_secs_f64(),
                "a positive number of seconds",
            )?),
        };
        let fetch_limits = FetchLimits {
            timeout: Duration::from_secs_f64(env.positive(
                "IMPORT_FETCH_SECONDS",
                FetchLimits::default().timeout.as_secs_f64(),
                "a positive number of seconds",
            )?),
            ..FetchLimits::default()
        };
        let tls_roots = match env.optional("TLS_EXTRA_CA_FILE") {
            Some(path) => TrustedRoots::with_bundle(&path).map_err(|err| ConfigError {
                variable: "TLS_EXTRA_CA_FILE",
                value: err.to_string(),
                expected: BUNDLE_FORM,
            })?,
            None => TrustedRoots::default(),
        };
        Ok(Self { policy, parse_limits, fetch_limits, tls_roots })
    }
}

#[cfg(test)]
mod tests {
    use crate::access::targets::{TargetList, TargetPattern};
    use crate::openapi::ParseLimits;

    use crate::config::settings_from_pairs as settings;

    #[test]
    fn imports_default_to_the_load_list_then_to_every_host_not_blocked() {
        let import = settings(&[]).unwrap().import;
        assert_eq!(import.policy.allowed, TargetList(vec![TargetPattern::Any]));
        assert_eq!(import.policy.blocked, crate::access::targets::DEFAULT_BLOCKED.parse().unwrap());
        assert_eq!(import.parse_limits, ParseLimits::DEFAULT);

        let import = settings(&[("ALLOWED_TARGETS", "10.0.0.0/8"), ("BLOCKED_TARGETS", "")]).unwrap().import;
        assert_eq!(import.policy.allowed, "10.0.0.0/8".parse().unwrap());
        let import =
            settings(&[("ALLOWED_TARGETS", "10.0.0.0/8"), ("IMPORT_ALLOWED_HOSTS", "docs.internal")])
                .unwrap()
                .import;
        assert_eq!(import.policy.allowed, "docs.internal".parse().unwrap());
    }

    #[test]
    fn bad_import_values_name_the_variable() {
        for (variable, value) in [
            ("IMPORT_ALLOWED_HOSTS", "http://docs/"),
            ("IMPORT_MAX_VALUES", "0"),
            ("IMPORT_MAX_DEPTH", "500"),
            ("IMPORT_MAX_OUTPUT_MB", "lots"),
            ("IMPORT_PARSE_SECONDS", "-1"),
            ("IMPORT_FETCH_SECONDS", "0"),
        ] {
            assert_eq!(settings(&[(variable, value)]).unwrap_err().variable, variable);
        }
        let limits =
            settings(&[("IMPORT_MAX_OUTPUT_MB", "2"), ("IMPORT_PARSE_SECONDS", "0.5")]).unwrap().import;
        assert_eq!(limits.parse_limits.max_output_bytes, 2 * 1024 * 1024);
        assert_eq!(limits.parse_limits.max_duration, std::time::Duration::from_millis(500));
    }

    #[test]
    fn an_extra_ca_bundle_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("not-a-bundle.pem");
        std::fs::write(&bundle, "just text").unwrap();
        let error = settings(&[("TLS_EXTRA_CA_FILE", bundle.to_str().unwrap())]).expect_err("refused");
        assert_eq!(error.variable, "TLS_EXTRA_CA_FILE");
        assert!(error.to_string().contains("holds no PEM certificate"), "{error}");
        let missing = settings(&[("TLS_EXTRA_CA_FILE", "/nonexistent/ca.pem")]).expect_err("refused");
        assert!(missing.to_string().contains("cannot read /nonexistent/ca.pem"), "{missing}");
        assert_eq!(settings(&[]).unwrap().import.tls_roots.extra_count(), 0);
    }
}
