//! Reading settings from the environment: the variables' accessor ([`Env`]) and the checks of
//! values that have a form (booleans, images, quantities, database URLs, names).

use super::ConfigError;

pub(super) const BOOLEANS: &[(&str, bool)] =
    &[("true", true), ("1", true), ("yes", true), ("false", false), ("0", false), ("no", false)];

pub(super) const SWITCHES: &[(&str, bool)] =
    &[("on", true), ("off", false), ("true", true), ("false", false)];

pub(super) fn is_image(value: &str) -> bool {
    !value.is_empty() && !value.chars().any(char::is_whitespace)
}

/// A Kubernetes quantity such as `500m`, `1.5`, `256Mi`, `1e3`.
pub(super) fn is_quantity(value: &str) -> bool {
    let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &value[digits.len()..];
    !digits.is_empty()
        && digits.parse::<f64>().is_ok_and(|n| n >= 0.0)
        && ["", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"].contains(&suffix)
}

pub(super) const DATABASE_URL_FORMS: &str =
    "sqlite://PATH[?mode=rwc], sqlite::memory:, or postgres://USER@HOST[:PORT]/DB";

pub(super) fn is_database_url(value: &str) -> bool {
    ["sqlite:", "postgres://", "postgresql://"].iter().any(|scheme| value.starts_with(scheme))
}

pub(super) fn is_identifier(value: &str) -> bool {
    !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

pub(super) fn is_dns_label(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 63
        && value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !value.starts_with('-')
        && !value.ends_with('-')
}

pub(super) fn is_log_level(value: &str) -> bool {
    matches!(value.to_ascii_lowercase().as_str(), "trace" | "debug" | "info" | "warn" | "warning" | "error")
}

pub(super) struct Env<'a> {
    pub(super) lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Env<'_> {
    /// The trimmed value, or None when unset or blank (blank means "use the default").
    pub(super) fn optional(&self, variable: &str) -> Option<String> {
        (self.lookup)(variable).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    pub(super) fn error(variable: &'static str, value: String, expected: &'static str) -> ConfigError {
        ConfigError { variable, value, expected }
    }

    pub(super) fn text(
        &self,
        variable: &'static str,
        default: &str,
        valid: impl Fn(&str) -> bool,
        expected: &'static str,
    ) -> Result<String, ConfigError> {
        let value = self.optional(variable).unwrap_or_else(|| default.to_owned());
        if valid(&value) { Ok(value) } else { Err(Self::error(variable, value, expected)) }
    }

    pub(super) fn parsed<T: std::str::FromStr>(
        &self,
        variable: &'static str,
        default: &str,
        expected: &'static str,
    ) -> Result<T, ConfigError> {
        let value = self.optional(variable).unwrap_or_else(|| default.to_owned());
        value.parse().map_err(|_| Self::error(variable, value, expected))
    }

    pub(super) fn number(
        &self,
        variable: &'static str,
        default: f64,
        valid: impl Fn(f64) -> bool,
        expected: &'static str,
    ) -> Result<f64, ConfigError> {
        let read = |value: &str| value.parse::<f64>().ok().filter(|n| n.is_finite() && valid(*n));
        self.read_or(variable, default, read, expected)
    }

    pub(super) fn positive(
        &self,
        variable: &'static str,
        default: f64,
        expected: &'static str,
    ) -> Result<f64, ConfigError> {
        self.number(variable, default, |n| n > 0.0, expected)
    }

    pub(super) fn non_negative(
        &self,
        variable: &'static str,
        default: f64,
        expected: &'static str,
    ) -> Result<f64, ConfigError> {
        self.number(variable, default, |n| n >= 0.0, expected)
    }

    /// A resource quantity, or None for `none` (leave the request or limit out).
    pub(super) fn quantity(
        &self,
        variable: &'static str,
        default: &str,
    ) -> Result<Option<String>, ConfigError> {
        let value = self.optional(variable).unwrap_or_else(|| default.to_owned());
        if value.eq_ignore_ascii_case("none") {
            Ok(None)
        } else if is_quantity(&value) {
            Ok(Some(value))
        } else {
            Err(Self::error(variable, value, "a Kubernetes quantity such as 500m, 2, 256Mi or 1Gi, or none"))
        }
    }

    pub(super) fn choice<T: Copy>(
        &self,
        variable: &'static str,
        default: T,
        choices: &[(&str, T)],
        expected: &'static str,
    ) -> Result<T, ConfigError> {
        let read = |value: &str| {
            choices.iter().find(|(name, _)| name.eq_ignore_ascii_case(value)).map(|(_, choice)| *choice)
        };
        self.read_or(variable, default, read, expected)
    }

    /// What `read` makes of the value, or `default` when unset; `read` gives None for a value
    /// it does not accept.
    pub(super) fn read_or<T>(
        &self,
        variable: &'static str,
        default: T,
        read: impl Fn(&str) -> Option<T>,
        expected: &'static str,
    ) -> Result<T, ConfigError> {
        match self.optional(variable) {
            None => Ok(default),
            Some(value) => read(&value).ok_or_else(|| Self::error(variable, value, expected)),
        }
    }
}
