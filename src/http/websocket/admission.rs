//! How many websockets each client address and each API token holds open.

use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    sync::{Arc, Mutex},
};

/// Open sockets per key, each counted while its [`Admission`] lives.
#[derive(Debug)]
pub struct Admissions<K: Eq + Hash>(Arc<Mutex<HashMap<K, usize>>>);

impl<K: Eq + Hash> Default for Admissions<K> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<K: Eq + Hash> Clone for Admissions<K> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<K: Eq + Hash + Clone> Admissions<K> {
    /// A place for one more socket of `key`, or None when it already has `cap`.
    pub fn admit(&self, key: K, cap: usize) -> Option<Admission<K>> {
        let mut open = self.0.lock().expect("socket counts");
        let count = open.entry(key.clone()).or_default();
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(Admission { admissions: self.clone(), key })
    }

    /// Sockets `key` holds now.
    #[cfg(test)]
    pub fn open(&self, key: &K) -> usize {
        self.0.lock().expect("socket counts").get(key).copied().unwrap_or(0)
    }
}

/// One open socket; dropping it frees its place.
#[derive(Debug)]
pub struct Admission<K: Eq + Hash> {
    admissions: Admissions<K>,
    key: K,
}

impl<K: Eq + Hash> Drop for Admission<K> {
    fn drop(&mut self) {
        let mut open = self.admissions.0.lock().expect("socket counts");
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// The key of a client address: an IPv6 client usually holds a whole /64, so that is one
/// client; an IPv4 address mapped into IPv6 is that IPv4 address.
pub fn client_key(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
        v4 => v4,
    }
}

/// The key of an API token: a stored token's id, or the bootstrap token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenKey {
    Stored(i64),
    Bootstrap,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_holds_at_most_its_cap_and_a_closed_socket_frees_its_place() {
        let admissions = Admissions::default();
        let first = admissions.admit("a", 2).unwrap();
        let _second = admissions.admit("a", 2).unwrap();
        assert!(admissions.admit("a", 2).is_none());
        assert!(admissions.admit("b", 2).is_some(), "keys are counted apart");
        drop(first);
        assert_eq!(admissions.open(&"a"), 1);
        assert!(admissions.admit("a", 2).is_some());
        assert_eq!(admissions.open(&"b"), 0, "a key whose sockets closed is forgotten");
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(other));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(client_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}
