//! Who may connect and how much one connection may hold: websocket limits, and the `Host`
//! and `Origin` a browser's request may carry.

use super::{ConfigError, Env};

/// Websocket limits, allowed origins and host names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// `WS_MAX_BYTES_BEFORE_INIT`: what a websocket may send before its `connection_init` is
    /// acknowledged, all messages and frames together.
    pub max_bytes_before_init: usize,
    /// `WS_MAX_MESSAGE_BYTES`: the largest websocket message (and frame) after that.
    pub max_message_bytes: usize,
    /// `WS_MAX_SOCKETS_PER_ADDRESS`: open websockets from one client address (an IPv6 /64).
    pub max_sockets_per_address: usize,
    /// `WS_MAX_SOCKETS_PER_TOKEN`: open websockets let in with one API token.
    pub max_sockets_per_token: usize,
    /// `WS_MAX_SUBSCRIPTIONS_PER_SOCKET`: operations running at once on one websocket.
    pub max_subscriptions_per_socket: usize,
    /// `ALLOWED_ORIGINS`: foreign origins whose pages may use `/graphql`.
    pub allowed_origins: AllowedOrigins,
    /// `ALLOWED_HOSTS`: host names, besides IP literals and `localhost`, that `AUTH_MODE=none`
    /// answers to.
    pub allowed_hosts: AllowedHosts,
}

/// Origins other than the server's own that may use `/graphql`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// `*`: any page.
    Any,
    /// Only these (scheme, lower-case host, port); empty: same-origin only.
    Listed(Vec<Origin>),
}

/// A web origin: scheme, host and port (the scheme's default when not written).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// Parses `scheme://host[:port]` as browsers send it in `Origin`; None for anything else
    /// (`null`, a path, user info).
    pub fn parse(text: &str) -> Option<Self> {
        let url = url::Url::parse(text.trim()).ok()?;
        let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
        if !matches!(url.scheme(), "http" | "https") || !bare || !url.username().is_empty() {
            return None;
        }
        Some(Self {
            scheme: url.scheme().to_owned(),
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default()?,
        })
    }
}

/// Host names `AUTH_MODE=none` answers to besides IP literals and `localhost`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowedHosts {
    /// `*`: any `Host` (no protection against DNS rebinding).
    Any,
    /// Lower-case names, without a trailing dot.
    Listed(Vec<String>),
}

impl AllowedHosts {
    pub fn allows(&self, name: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Listed(names) => {
                let name = name.trim_end_matches('.');
                names.iter().any(|listed| listed.eq_ignore_ascii_case(name))
            }
        }
    }
}

impl ConnectionSettings {
    pub(super) fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        const BYTES: &str = "a whole number of bytes (at least 1024)";
        const COUNT: &str = "a whole number (at least 1)";
        let bytes = |variable, default| {
            env.parsed::<usize>(variable, default, BYTES).and_then(|n| at_least(variable, n, 1024, BYTES))
        };
        let count = |variable, default| {
            env.parsed::<usize>(variable, default, COUNT).and_then(|n| at_least(variable, n, 1, COUNT))
        };
        Ok(Self {
            max_bytes_before_init: bytes("WS_MAX_BYTES_BEFORE_INIT", "65536")?,
            max_message_bytes: bytes("WS_MAX_MESSAGE_BYTES", "1048576")?,
            max_sockets_per_address: count("WS_MAX_SOCKETS_PER_ADDRESS", "256")?,
            max_sockets_per_token: count("WS_MAX_SOCKETS_PER_TOKEN", "100")?,
            max_subscriptions_per_socket: count("WS_MAX_SUBSCRIPTIONS_PER_SOCKET", "20")?,
            allowed_origins: env.read_or(
                "ALLOWED_ORIGINS",
                AllowedOrigins::Listed(Vec::new()),
                parse_origins,
                "a comma-separated list of origins such as https://grafana.example.com, or *",
            )?,
            allowed_hosts: env.read_or(
                "ALLOWED_HOSTS",
                AllowedHosts::Listed(Vec::new()),
                parse_hosts,
                "a comma-separated list of host names such as metric-vault.lan, or *",
            )?,
        })
    }
}

fn at_least(
    variable: &'static str,
    n: usize,
    least: usize,
    expected: &'static str,
) -> Result<usize, ConfigError> {
    if n >= least { Ok(n) } else { Err(ConfigError { variable, value: n.to_string(), expected }) }
}

fn items(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|item| !item.is_empty())
}

fn parse_origins(list: &str) -> Option<AllowedOrigins> {
    if items(list).any(|item| item == "*") {
        return Some(AllowedOrigins::Any);
    }
    let origins = items(list).map(Origin::parse).collect::<Option<Vec<_>>>()?;
    Some(AllowedOrigins::Listed(origins))
}

fn parse_hosts(list: &str) -> Option<AllowedHosts> {
    if items(list).any(|item| item == "*") {
        return Some(AllowedHosts::Any);
    }
    let is_name = |name: &str| {
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    };
    let names = items(list)
        .map(|item| item.trim_end_matches('.').to_ascii_lowercase())
        .map(|name| is_name(&name).then_some(name))
        .collect::<Option<Vec<_>>>()?;
    Some(AllowedHosts::Listed(names))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::Settings;

    fn settings(pairs: &[(&str, &str)]) -> Result<ConnectionSettings, ConfigError> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|name| map.get(name).cloned()).map(|s| s.connections)
    }

    #[test]
    fn defaults_allow_same_origin_and_loopback_names_only() {
        let s = settings(&[]).unwrap();
        assert_eq!((s.max_bytes_before_init, s.max_message_bytes), (64 * 1024, 1024 * 1024));
        assert_eq!(
            (s.max_sockets_per_address, s.max_sockets_per_token, s.max_subscriptions_per_socket),
            (256, 100, 20)
        );
        assert_eq!(s.allowed_origins, AllowedOrigins::Listed(Vec::new()));
        assert!(!s.allowed_hosts.allows("evil.example"));
    }

    #[test]
    fn origins_and_hosts_are_read_and_normalised() {
        let s = settings(&[
            ("ALLOWED_ORIGINS", "https://Grafana.example.com, http://localhost:3000"),
            ("ALLOWED_HOSTS", "Metric-Vault.lan., box"),
        ])
        .unwrap();
        let grafana = Origin { scheme: "https".into(), host: "grafana.example.com".into(), port: 443 };
        let local = Origin { scheme: "http".into(), host: "localhost".into(), port: 3000 };
        assert_eq!(s.allowed_origins, AllowedOrigins::Listed(vec![grafana, local]));
        assert!(s.allowed_hosts.allows("metric-vault.lan") && s.allowed_hosts.allows("BOX."));
        assert!(!s.allowed_hosts.allows("lan"));
        let any = settings(&[("ALLOWED_ORIGINS", "*"), ("ALLOWED_HOSTS", "*")]).unwrap();
        assert_eq!(any.allowed_origins, AllowedOrigins::Any);
        assert_eq!(any.allowed_hosts, AllowedHosts::Any);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (variable, value) in [
            ("ALLOWED_ORIGINS", "grafana.example.com"),
            ("ALLOWED_ORIGINS", "https://a.example/path"),
            ("ALLOWED_ORIGINS", "null"),
            ("ALLOWED_HOSTS", "http://a.example"),
            ("WS_MAX_BYTES_BEFORE_INIT", "12"),
            ("WS_MAX_SOCKETS_PER_TOKEN", "0"),
            ("WS_MAX_SUBSCRIPTIONS_PER_SOCKET", "many"),
        ] {
            assert_eq!(settings(&[(variable, value)]).unwrap_err().variable, variable, "{value}");
        }
    }
}
