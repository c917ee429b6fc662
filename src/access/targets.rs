//! Where load may be sent and documents fetched from: `ALLOWED_TARGETS` and `BLOCKED_TARGETS`.
//!
//! A load-testing server can aim a flood of requests at any host, and an import by URL makes
//! it fetch whatever it is told to. Two lists bound both:
//!
//! - **blocked** (`BLOCKED_TARGETS`, by default the cloud metadata services): never fetched
//!   from and never sent load to, unless an `ALLOWED_TARGETS` entry other than `*` names the
//!   host or address explicitly;
//! - **allowed** (`ALLOWED_TARGETS`): when set, a launch may only aim at hosts it matches.
//!   When unset, a launch may only aim at the hosts of its project's imported base URLs.
//!
//! Imports have their own allow list, [`ImportPolicy`] (`IMPORT_ALLOWED_HOSTS`, else
//! `ALLOWED_TARGETS`, else every host), with the same block list.
//!
//! Patterns: `*`, a host name (`api.example.com`), a wildcard suffix (`*.example.com`), an
//! address (`10.0.0.7`, `::1`) or a CIDR block (`10.0.0.0/8`, `fd00::/8`). A host name is
//! compared by name and by every address it resolves to; it is blocked when any of them is.
//!
//! An address is compared in every form that reaches the same place ([`address_forms`]): an
//! IPv4 address carried in IPv6 (mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`,
//! compatible `::a.b.c.d`) is also that IPv4 address, and `0.0.0.0` and `::`, which connect to
//! this host, are also `127.0.0.1` and `::1`. So a block on `169.254.0.0/16` or on loopback
//! cannot be stepped around by writing the address another way.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

/// Addresses of the cloud metadata services (AWS, GCP, Azure, OpenStack: 169.254.169.254 in
/// the link-local block; AWS over IPv6; Alibaba Cloud) and the names GCP gives them.
pub const DEFAULT_BLOCKED: &str =
    "169.254.0.0/16,fe80::/10,fd00:ec2::254/128,100.100.100.200/32,metadata.google.internal,metadata";

/// One entry of a target list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetPattern {
    /// `*`: every host.
    Any,
    /// An exact host name, lower case.
    Host(String),
    /// `*.example.com`: any name ending in `.example.com` (not `example.com` itself).
    Suffix(String),
    /// An address block; a single address is a /32 or /128.
    Network { base: IpAddr, prefix: u8 },
}

impl TargetPattern {
    fn matches_name(&self, host: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Host(name) => name.eq_ignore_ascii_case(host),
            Self::Suffix(suffix) => {
                host.len() > suffix.len() + 1
                    && host.is_char_boundary(host.len() - suffix.len() - 1)
                    && host[host.len() - suffix.len() - 1..].eq_ignore_ascii_case(&format!(".{suffix}"))
            }
            Self::Network { .. } => false,
        }
    }

    /// Whether the address, in any of its [`address_forms`], is in this entry.
    fn matches_address(&self, address: IpAddr) -> bool {
        match self {
            Self::Any => true,
            Self::Network { base, prefix } => {
                address_forms(address).into_iter().flatten().any(|form| in_network(form, *base, *prefix))
            }
            Self::Host(_) | Self::Suffix(_) => false,
        }
    }
}

impl FromStr for TargetPattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim().trim_end_matches('.').to_ascii_lowercase();
        if text == "*" {
            return Ok(Self::Any);
        }
        if let Some((address, prefix)) = text.split_once('/') {
            let base: IpAddr = address.parse().map_err(|_| format!("`{text}` is not a CIDR block"))?;
            let most = if base.is_ipv4() { 32 } else { 128 };
            let prefix: u8 = prefix
                .parse()
                .ok()
                .filter(|p| *p <= most)
                .ok_or_else(|| format!("`{text}`: the prefix length must be 0 to {most}"))?;
            return Ok(Self::Network { base, prefix });
        }
        if let Ok(base) = text.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            return Ok(Self::Network { base, prefix: if base.is_ipv4() { 32 } else { 128 } });
        }
        let (suffix, name) = match text.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, text.as_str()),
        };
        let valid_label = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if name.is_empty() || name.len() > 253 || !name.split('.').all(valid_label) {
            return Err(format!("`{text}` is not a host name, address, CIDR block or *.domain"));
        }
        Ok(if suffix { Self::Suffix(name.to_owned()) } else { Self::Host(name.to_owned()) })
    }
}

impl fmt::Display for TargetPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Host(name) => f.write_str(name),
            Self::Suffix(name) => write!(f, "*.{name}"),
            Self::Network { base, prefix } => write!(f, "{base}/{prefix}"),
        }
    }
}

/// A comma-separated list of [`TargetPattern`]s.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetList(pub Vec<TargetPattern>);

impl FromStr for TargetList {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(TargetList)
    }
}

impl TargetList {
    /// Whether an entry matches the host by name or any of its addresses.
    fn matches(&self, host: &Host<'_>, explicit_only: bool) -> bool {
        self.0.iter().filter(|p| !(explicit_only && **p == TargetPattern::Any)).any(|pattern| {
            pattern.matches_name(host.name) || host.addresses.iter().any(|a| pattern.matches_address(*a))
        })
    }

    /// Whether the host is covered: by name, or because every address it has is.
    fn covers(&self, host: &Host<'_>) -> bool {
        self.0.iter().any(|pattern| pattern.matches_name(host.name))
            || (!host.addresses.is_empty()
                && host.addresses.iter().all(|a| self.0.iter().any(|p| p.matches_address(*a))))
    }
}

/// A host as a URL names it, with the addresses it stands for (itself, for an address).
#[derive(Clone, Debug)]
pub struct Host<'a> {
    /// Lower case, without brackets.
    pub name: &'a str,
    pub addresses: Vec<IpAddr>,
}

impl<'a> Host<'a> {
    /// `name` as found in a URL (`[::1]` for IPv6), with the addresses it resolved to.
    pub fn new(name: &'a str, resolved: Vec<IpAddr>) -> Self {
        // `metadata.internal.` is the same host as `metadata.internal` (the root's dot).
        let name = name.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.');
        let mut addresses = resolved;
        if let Ok(address) = name.parse::<IpAddr>() {
            addresses.push(address);
        }
        Self { name, addresses }
    }
}

/// Why a target was refused; the text is shown to the user.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetRefusal {
    #[error(
        "{host} is a blocked address (BLOCKED_TARGETS: cloud metadata services by default); \
         list it in ALLOWED_TARGETS to allow it"
    )]
    Blocked { host: String },
    #[error("{host} is not an allowed load-test target (ALLOWED_TARGETS: {allowed})")]
    NotAllowed { host: String, allowed: String },
    #[error(
        "{host} is not the host of one of this project's imported base URLs; \
         set ALLOWED_TARGETS to aim load elsewhere"
    )]
    NotImported { host: String },
    #[error("{host} is not a host documents may be imported from (IMPORT_ALLOWED_HOSTS)")]
    NotImportable { host: String },
}

/// The two lists, as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetPolicy {
    pub allowed: Option<TargetList>,
    pub blocked: TargetList,
}

impl Default for TargetPolicy {
    fn default() -> Self {
        Self { allowed: None, blocked: DEFAULT_BLOCKED.parse().expect("the default block list parses") }
    }
}

impl TargetPolicy {
    /// May load be sent to `host`? `imported_hosts` are the host names of the project's
    /// imported base URLs, the default allow list.
    pub fn check_load(&self, host: &Host<'_>, imported_hosts: &[String]) -> Result<(), TargetRefusal> {
        self.check_blocked(host)?;
        match &self.allowed {
            Some(allowed) if allowed.covers(host) => Ok(()),
            Some(allowed) => Err(TargetRefusal::NotAllowed {
                host: host.name.to_owned(),
                allowed: allowed.0.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            }),
            None if imported_hosts.iter().any(|h| h.eq_ignore_ascii_case(host.name)) => Ok(()),
            None => Err(TargetRefusal::NotImported { host: host.name.to_owned() }),
        }
    }

    fn check_blocked(&self, host: &Host<'_>) -> Result<(), TargetRefusal> {
        let explicitly_allowed = self.allowed.as_ref().is_some_and(|a| a.matches(host, true));
        if self.blocked.matches(host, false) && !explicitly_allowed {
            return Err(TargetRefusal::Blocked { host: host.name.to_owned() });
        }
        Ok(())
    }
}

/// Where documents may be imported from by URL.
///
/// A host must be covered by `allowed` (by name, or all its addresses) and not be in
/// `blocked`, unless an `allowed` entry other than `*` names it explicitly, as for launches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportPolicy {
    /// `IMPORT_ALLOWED_HOSTS`, else `ALLOWED_TARGETS`, else `*`.
    pub allowed: TargetList,
    /// `BLOCKED_TARGETS`.
    pub blocked: TargetList,
}

impl Default for ImportPolicy {
    fn default() -> Self {
        Self::from_targets(None, &TargetPolicy::default())
    }
}

impl ImportPolicy {
    /// `import_allowed` (IMPORT_ALLOWED_HOSTS) when set, else the load-test allow list when
    /// set, else every host: internal APIs at private addresses are what this server tests,
    /// so by default only the block list (cloud metadata services) stands between an import and
    /// a host, and the fetch's answers never tell a closed port from a forbidden one.
    pub fn from_targets(import_allowed: Option<TargetList>, targets: &TargetPolicy) -> Self {
        let allowed = import_allowed
            .or_else(|| targets.allowed.clone())
            .unwrap_or_else(|| TargetList(vec![TargetPattern::Any]));
        Self { allowed, blocked: targets.blocked.clone() }
    }

    /// May a document be fetched from `host` (its name with what it resolved to, or an address)?
    pub fn check(&self, host: &Host<'_>) -> Result<(), TargetRefusal> {
        if self.blocked.matches(host, false) && !self.allowed.matches(host, true) {
            return Err(TargetRefusal::Blocked { host: host.name.to_owned() });
        }
        if !self.allowed.covers(host) {
            return Err(TargetRefusal::NotImportable { host: host.name.to_owned() });
        }
        Ok(())
    }
}

/// The addresses `host` resolves to (empty when it does not resolve in time).
pub async fn resolve(host: &str) -> Vec<IpAddr> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(address) = host.parse::<IpAddr>() {
        return vec![address];
    }
    let lookup = tokio::net::lookup_host((host, 0));
    match tokio::time::timeout(std::time::Duration::from_secs(3), lookup).await {
        Ok(Ok(addresses)) => addresses.map(|a| a.ip()).collect(),
        _ => Vec::new(),
    }
}

/// The forms of `address` that lead to the same place: itself, the IPv4 address an IPv6 one
/// carries (mapped `::ffff:0:0/96`, NAT64 `64:ff9b::/96`, compatible `::/96`), and loopback
/// for the "this host" addresses `0.0.0.0` and `::`, which connect to the local machine.
pub fn address_forms(address: IpAddr) -> [Option<IpAddr>; 3] {
    let carried = match address {
        IpAddr::V4(_) => None,
        IpAddr::V6(v6) => carried_ipv4(v6),
    };
    let this_host = |address: IpAddr| match address {
        IpAddr::V4(v4) if v4.is_unspecified() => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        IpAddr::V6(v6) if v6.is_unspecified() => Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        _ => None,
    };
    let loopback = this_host(address).or_else(|| carried.and_then(this_host));
    [Some(address), carried, loopback]
}

fn carried_ipv4(address: Ipv6Addr) -> Option<IpAddr> {
    let bits = u128::from(address);
    let low = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    let nat64 = 0x0064_ff9b_u128 << 96;
    match bits >> 32 {
        0xffff => Some(IpAddr::V4(low)),
        high if high == nat64 >> 32 => Some(IpAddr::V4(low)),
        // `::` and `::1` are IPv6's own unspecified and loopback addresses, not IPv4 ones.
        0 if bits > 1 => Some(IpAddr::V4(low)),
        _ => None,
    }
}

fn in_network(address: IpAddr, base: IpAddr, prefix: u8) -> bool {
    match (address, base) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str) -> Host<'_> {
        Host::new(name, Vec::new())
    }

    fn policy(allowed: Option<&str>) -> TargetPolicy {
        TargetPolicy { allowed: allowed.map(|a| a.parse().unwrap()), ..TargetPolicy::default() }
    }

    #[test]
    fn cloud_metadata_addresses_are_blocked_by_default() {
        let policy = policy(None);
        for blocked in [
            "169.254.169.254",
            "[fd00:ec2::254]",
            "100.100.100.200",
            "metadata.google.internal",
            "METADATA.Google.Internal",
            "metadata.google.internal.",
            "fe80::1",
        ] {
            assert!(
                matches!(
                    ImportPolicy::from_targets(None, &policy).check(&host(blocked)),
                    Err(TargetRefusal::Blocked { .. })
                ),
                "{blocked}"
            );
        }
        // A name that resolves to a metadata address is blocked too (DNS tricks).
        let sneaky = Host::new("innocent.example", vec!["169.254.169.254".parse().unwrap()]);
        assert!(ImportPolicy::from_targets(None, &policy).check(&sneaky).is_err());
        // The same address seen through IPv6.
        assert!(ImportPolicy::from_targets(None, &policy).check(&host("::ffff:169.254.169.254")).is_err());
        assert!(ImportPolicy::from_targets(None, &policy).check(&host("127.0.0.1")).is_ok());
        assert!(ImportPolicy::from_targets(None, &policy).check(&host("api.example.com")).is_ok());
    }

    #[test]
    fn only_an_explicit_entry_unblocks_a_blocked_address() {
        assert!(
            ImportPolicy::from_targets(None, &policy(Some("*"))).check(&host("169.254.169.254")).is_err()
        );
        assert!(
            ImportPolicy::from_targets(None, &policy(Some("169.254.169.254")))
                .check(&host("169.254.169.254"))
                .is_ok()
        );
        assert!(policy(Some("169.254.0.0/16")).check_load(&host("169.254.169.254"), &[]).is_ok());
    }

    #[test]
    fn without_an_allow_list_load_goes_only_to_imported_hosts() {
        let policy = policy(None);
        let imported = vec!["127.0.0.1".to_owned(), "api.example.com".to_owned()];
        assert!(policy.check_load(&host("127.0.0.1"), &imported).is_ok());
        assert!(policy.check_load(&host("api.example.com"), &imported).is_ok());
        assert_eq!(
            policy.check_load(&host("127.0.0.2"), &imported),
            Err(TargetRefusal::NotImported { host: "127.0.0.2".into() })
        );
    }

    #[test]
    fn an_allow_list_matches_names_suffixes_addresses_and_blocks() {
        let policy = policy(Some("127.0.0.1, *.staging.example.com, 10.0.0.0/8, ::1"));
        assert!(policy.check_load(&host("127.0.0.1"), &[]).is_ok());
        assert!(policy.check_load(&host("api.staging.example.com"), &[]).is_ok());
        assert!(policy.check_load(&host("staging.example.com"), &[]).is_err());
        assert!(policy.check_load(&host("10.20.30.40"), &[]).is_ok());
        assert!(policy.check_load(&host("[::1]"), &[]).is_ok());
        let refused = policy.check_load(&host("127.0.0.2"), &["127.0.0.2".into()]).unwrap_err();
        assert!(
            refused.to_string().contains("ALLOWED_TARGETS: 127.0.0.1/32,*.staging.example.com"),
            "{refused}"
        );
        // A name is covered when every address it resolves to is.
        let internal =
            |addrs: &[&str]| Host::new("db.internal", addrs.iter().map(|a| a.parse().unwrap()).collect());
        assert!(policy.check_load(&internal(&["10.1.2.3"]), &[]).is_ok());
        assert!(policy.check_load(&internal(&["10.1.2.3", "192.168.1.1"]), &[]).is_err());
        assert!(policy.check_load(&internal(&[]), &[]).is_err());
    }

    #[test]
    fn patterns_parse_or_say_what_is_wrong() {
        assert_eq!("*".parse::<TargetPattern>(), Ok(TargetPattern::Any));
        assert_eq!(
            "10.0.0.0/8".parse::<TargetPattern>(),
            Ok(TargetPattern::Network { base: "10.0.0.0".parse().unwrap(), prefix: 8 })
        );
        assert!("10.0.0.0/33".parse::<TargetPattern>().unwrap_err().contains("0 to 32"));
        assert!("http://x".parse::<TargetPattern>().is_err());
        assert!("a b".parse::<TargetPattern>().is_err());
        assert_eq!("Example.COM.".parse::<TargetPattern>(), Ok(TargetPattern::Host("example.com".into())));
        assert_eq!("".parse::<TargetList>(), Ok(TargetList(vec![])));
        assert!(DEFAULT_BLOCKED.parse::<TargetList>().is_ok());
    }

    #[test]
    fn networks_compare_by_prefix() {
        let net = |s: &str| match s.parse::<TargetPattern>().unwrap() {
            TargetPattern::Network { base, prefix } => (base, prefix),
            _ => unreachable!(),
        };
        let (base, prefix) = net("192.168.0.0/16");
        assert!(in_network("192.168.255.1".parse().unwrap(), base, prefix));
        assert!(!in_network("192.169.0.1".parse().unwrap(), base, prefix));
        let (base, prefix) = net("0.0.0.0/0");
        assert!(in_network("8.8.8.8".parse().unwrap(), base, prefix));
        assert!(!in_network("::1".parse().unwrap(), base, prefix));
    }

    fn address(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ipv4_carried_in_ipv6_matches_the_blocks_of_the_ipv4_address() {
        let metadata = policy(None);
        let imports = ImportPolicy::from_targets(None, &metadata);
        for carried in ["::ffff:169.254.169.254", "64:ff9b::169.254.169.254", "::169.254.169.254"] {
            let refused = Err(TargetRefusal::Blocked { host: carried.to_owned() });
            assert_eq!(metadata.check_load(&host(carried), &[carried.to_owned()]), refused, "load {carried}");
            assert_eq!(imports.check(&host(carried)), refused, "import {carried}");
        }
        // Other IPv6 addresses carry nothing; `::` and `::1` are IPv6's own.
        assert_eq!(address_forms(address("2001:db8::a9fe:a9fe"))[1], None);
        assert_eq!(address_forms(address("::1"))[1], None);
        assert_eq!(address_forms(address("64:ff9b::7f00:1"))[1], Some(address("127.0.0.1")));
    }

    #[test]
    fn this_host_addresses_match_like_loopback() {
        let no_loopback = TargetPolicy { allowed: None, blocked: "127.0.0.0/8,::1".parse().unwrap() };
        let imports = ImportPolicy::from_targets(None, &no_loopback);
        for this_host in ["0.0.0.0", "::", "::ffff:0.0.0.0", "[::]", "127.0.0.5", "::ffff:127.0.0.1"] {
            assert!(
                matches!(imports.check(&host(this_host)), Err(TargetRefusal::Blocked { .. })),
                "import {this_host}"
            );
            assert!(
                no_loopback.check_load(&host(this_host), &[this_host.to_owned()]).is_err(),
                "load {this_host}"
            );
        }
        assert!(imports.check(&host("10.0.0.1")).is_ok());
        // And an allow list of loopback covers them.
        let loopback_only = ImportPolicy::from_targets(Some("127.0.0.1,::1".parse().unwrap()), &policy(None));
        for this_host in ["0.0.0.0", "::", "127.0.0.1", "::ffff:127.0.0.1"] {
            assert!(loopback_only.check(&host(this_host)).is_ok(), "{this_host}");
        }
    }

    #[test]
    fn imports_follow_their_own_list_then_the_load_list_then_anything_not_blocked() {
        let anything = ImportPolicy::from_targets(None, &policy(None));
        assert!(anything.check(&host("127.0.0.2")).is_ok());
        assert!(anything.check(&host("api.example.com")).is_ok());
        assert!(anything.check(&host("169.254.169.254")).is_err(), "the block list still applies");

        let load_list = ImportPolicy::from_targets(None, &policy(Some("127.0.0.1")));
        assert!(load_list.check(&host("127.0.0.1")).is_ok());
        assert_eq!(
            load_list.check(&host("127.0.0.2")),
            Err(TargetRefusal::NotImportable { host: "127.0.0.2".into() })
        );

        let own = ImportPolicy::from_targets(
            Some("*.docs.example, 127.0.0.2".parse().unwrap()),
            &policy(Some("127.0.0.1")),
        );
        assert!(own.check(&host("127.0.0.2")).is_ok());
        assert!(own.check(&host("api.docs.example")).is_ok());
        assert!(own.check(&host("127.0.0.1")).is_err(), "IMPORT_ALLOWED_HOSTS replaces ALLOWED_TARGETS");
        // A name is judged with what it resolved to: every address must be covered.
        let resolved =
            |addresses: &[&str]| Host::new("docs.internal", addresses.iter().map(|a| address(a)).collect());
        assert!(own.check(&resolved(&["127.0.0.2"])).is_ok());
        assert!(own.check(&resolved(&["127.0.0.2", "127.0.0.3"])).is_err());
        assert!(own.check(&resolved(&[])).is_err());
    }
}
