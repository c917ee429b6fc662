//! Signing deliveries, so a receiver can tell a delivery came from this server and was not
//! replayed later: `X-MetricVault-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`,
//! with the timestamp (unix seconds) in `X-MetricVault-Timestamp`. Signing the timestamp with
//! the body lets a receiver refuse old deliveries without trusting an unsigned header.
//!
//! HMAC comes from `ring`, which rustls already builds for the server's TLS.

use ring::hmac;

/// The event's name (`RUN_FINISHED`, …).
pub const EVENT_HEADER: &str = "X-MetricVault-Event";
/// The delivery's id; the same delivery retried carries the same id (receivers dedupe on it).
pub const DELIVERY_HEADER: &str = "X-MetricVault-Delivery";
/// Unix seconds when this attempt was signed.
pub const TIMESTAMP_HEADER: &str = "X-MetricVault-Timestamp";
/// `sha256=` and the hex HMAC.
pub const SIGNATURE_HEADER: &str = "X-MetricVault-Signature";

/// A new webhook secret: 32 random bytes, in hex.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    hex(&bytes)
}

/// The `X-MetricVault-Signature` value of `body` sent at `timestamp` (unix seconds). The key is
/// the secret's text as shown to the user (its UTF-8 bytes), so receivers use it as they got it.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut context = hmac::Context::with_key(&key);
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body.as_bytes());
    format!("sha256={}", hex(context.sign().as_ref()))
}

/// Whether `header` is the signature of `body` at `timestamp` (compared in constant time).
pub fn verify(secret: &str, timestamp: i64, body: &str, header: &str) -> bool {
    let Some(given) = header.strip_prefix("sha256=").and_then(unhex) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::verify(&key, format!("{timestamp}.{body}").as_bytes(), &given).is_ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_rfc_4231_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?". Split at a
        // "." the data does not have: timestamp and body are joined with one.
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        assert_eq!(hex(hmac::sign(&key, b"what do ya want for nothing?").as_ref()), expected);
        // With our framing: "1700000000.{body}".
        let body = r#"{"event":"RUN_FINISHED"}"#;
        let framed = hmac::sign(&key, format!("1700000000.{body}").as_bytes());
        assert_eq!(signature("Jefe", 1_700_000_000, body), format!("sha256={}", hex(framed.as_ref())));
    }

    #[test]
    fn a_signature_verifies_only_for_its_secret_timestamp_and_body() {
        let secret = generate_secret();
        let header = signature(&secret, 1_700_000_000, "{}");
        assert!(verify(&secret, 1_700_000_000, "{}", &header));
        assert!(!verify(&secret, 1_700_000_001, "{}", &header), "another time");
        assert!(!verify(&secret, 1_700_000_000, "{ }", &header), "another body");
        assert!(!verify(&generate_secret(), 1_700_000_000, "{}", &header), "another secret");
        assert!(!verify(&secret, 1_700_000_000, "{}", "sha256=zz"));
        assert!(!verify(&secret, 1_700_000_000, "{}", header.trim_start_matches("sha256=")));
    }

    #[test]
    fn secrets_are_32_random_bytes_in_hex() {
        let (a, b) = (generate_secret(), generate_secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{a}");
    }
}
