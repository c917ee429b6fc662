//! Signed report links: `/runs/{id}/report?role=VIEWER&expires=<unix>&sig=<hex>` opens one
//! run's report page without a token until `expires`, and shows what `role` may see (below
//! OPERATOR, secret header values read `***`). `sig` is HMAC-SHA256 under a key only the
//! server holds, over the run, the role and the expiry together: changing any of them, or
//! using the signature on another run, breaks it. A link is a bearer credential for one run's
//! page; it cannot be turned into an API token, and it ends by itself.
//!
//! HMAC comes from `ring`, which rustls already builds.

use ring::hmac;

use super::Role;

/// What a link signs, besides its fields: keeps these signatures apart from any other use
/// the key might ever be put to.
const PURPOSE: &str = "metric-vault report link v1";

/// The key report links are signed with.
pub struct LinkKey(hmac::Key);

impl LinkKey {
    /// A new secret: 32 random bytes, in hex (how it is stored).
    pub fn generate_secret() -> String {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the operating system's random source");
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The key for a stored secret (its text's bytes).
    pub fn from_secret(secret: &str) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()))
    }

    fn message(run_id: i64, role: Role, expires: i64) -> String {
        format!("{PURPOSE}\n{run_id}\n{}\n{expires}", role.as_str())
    }
}

/// Never prints the key.
impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(…)")
    }
}

/// What a link grants: run `run_id`'s page, as `role` sees it, until `expires` (unix seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportLink {
    pub run_id: i64,
    pub role: Role,
    pub expires: i64,
}

/// Why a link was refused; the text is shown to whoever followed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkRefusal {
    #[error("this report link is incomplete: it needs `role`, `expires` and `sig`")]
    Incomplete,
    #[error("this report link is not valid (it was changed, or is not for this run)")]
    BadSignature,
    #[error("this report link has expired; ask for a new one (TestHistory.reportUrl)")]
    Expired,
}

impl ReportLink {
    /// The page's path with its signed query.
    pub fn path(&self, key: &LinkKey) -> String {
        let signature = hmac::sign(&key.0, LinkKey::message(self.run_id, self.role, self.expires).as_bytes());
        let hex: String = signature.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("/runs/{}/report?role={}&expires={}&sig={hex}", self.run_id, self.role.as_str(), self.expires)
    }

    /// The link to run `run_id` with these query values, if `sig` signs them and `expires` is
    /// not past `now` (unix seconds). The signature is checked first (in constant time), so a
    /// changed expiry reads as a bad link, not an expired one.
    pub fn verify(
        key: &LinkKey,
        run_id: i64,
        role: Option<&str>,
        expires: Option<&str>,
        sig: Option<&str>,
        now: i64,
    ) -> Result<Self, LinkRefusal> {
        let (Some(role), Some(expires), Some(sig)) = (role, expires, sig) else {
            return Err(LinkRefusal::Incomplete);
        };
        let role =
            Role::parse(role).filter(|parsed| parsed.as_str() == role).ok_or(LinkRefusal::BadSignature)?;
        // Only the canonical spelling: `+5` or `05` would be other texts signing the same time.
        let expires_at: i64 = expires.parse().map_err(|_| LinkRefusal::BadSignature)?;
        if expires_at.to_string() != expires {
            return Err(LinkRefusal::BadSignature);
        }
        let given = unhex(sig).ok_or(LinkRefusal::BadSignature)?;
        hmac::verify(&key.0, LinkKey::message(run_id, role, expires_at).as_bytes(), &given)
            .map_err(|_| LinkRefusal::BadSignature)?;
        if expires_at < now {
            return Err(LinkRefusal::Expired);
        }
        Ok(Self { run_id, role, expires: expires_at })
    }
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|at| u8::from_str_radix(&text[at..at + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The query values of a link's path.
    fn query(path: &str) -> std::collections::HashMap<String, String> {
        let query = path.split_once('?').unwrap().1;
        query
            .split('&')
            .map(|pair| pair.split_once('=').unwrap())
            .map(|(k, v)| (k.into(), v.into()))
            .collect()
    }

    fn check(
        key: &LinkKey,
        run_id: i64,
        values: &std::collections::HashMap<String, String>,
        now: i64,
    ) -> Result<ReportLink, LinkRefusal> {
        let get = |name: &str| values.get(name).map(String::as_str);
        ReportLink::verify(key, run_id, get("role"), get("expires"), get("sig"), now)
    }

    #[test]
    fn a_link_opens_its_own_run_until_it_expires() {
        let key = LinkKey::from_secret(&LinkKey::generate_secret());
        let link = ReportLink { run_id: 7, role: Role::Viewer, expires: 1_000 };
        let path = link.path(&key);
        assert!(path.starts_with("/runs/7/report?role=VIEWER&expires=1000&sig="), "{path}");
        let values = query(&path);

        assert_eq!(check(&key, 7, &values, 1_000), Ok(link));
        assert_eq!(check(&key, 7, &values, 1_001), Err(LinkRefusal::Expired));
        assert_eq!(check(&key, 8, &values, 0), Err(LinkRefusal::BadSignature), "another run");
        let other_key = LinkKey::from_secret(&LinkKey::generate_secret());
        assert_eq!(check(&other_key, 7, &values, 0), Err(LinkRefusal::BadSignature), "another server");
    }

    #[test]
    fn changing_the_role_the_expiry_or_the_signature_breaks_the_link() {
        let key = LinkKey::from_secret("a secret");
        let values = query(&ReportLink { run_id: 1, role: Role::Viewer, expires: 50 }.path(&key));
        let changed = |name: &str, value: &str| {
            let mut values = values.clone();
            values.insert(name.into(), value.into());
            check(&key, 1, &values, 0)
        };
        assert_eq!(changed("role", "ADMIN"), Err(LinkRefusal::BadSignature));
        assert_eq!(changed("role", "viewer"), Err(LinkRefusal::BadSignature), "one spelling only");
        assert_eq!(changed("expires", "9999999999"), Err(LinkRefusal::BadSignature));
        assert_eq!(changed("expires", "050"), Err(LinkRefusal::BadSignature));
        let mut flipped = values["sig"].clone();
        flipped.replace_range(0..1, if flipped.starts_with('0') { "1" } else { "0" });
        assert_eq!(changed("sig", &flipped), Err(LinkRefusal::BadSignature));
        assert_eq!(changed("sig", "zz"), Err(LinkRefusal::BadSignature));
        let mut missing = values.clone();
        missing.remove("sig");
        assert_eq!(check(&key, 1, &missing, 0), Err(LinkRefusal::Incomplete));
    }
}
