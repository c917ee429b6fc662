//! TLS for the server's own requests (document fetches): rustls with the ring provider (the
//! one kube's client already builds), trusting the web PKI roots — Mozilla's list, compiled in
//! by `webpki-roots`, so a container without a CA store still verifies public sites — plus the
//! CA certificates of `TLS_EXTRA_CA_FILE`, for internal APIs signed by a private CA.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, pem::PemObject};

/// The certificates a client trusts beyond the web PKI.
#[derive(Clone, Debug, Default)]
pub struct TrustedRoots {
    extra: Vec<CertificateDer<'static>>,
}

/// Why an extra CA bundle cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot read {path}: {source}")]
    Unreadable { path: String, source: std::io::Error },
    #[error("{path} holds no PEM certificate")]
    Empty { path: String },
    #[error("{path}: a certificate is not valid PEM: {reason}")]
    Malformed { path: String, reason: String },
    #[error("{path}: a certificate is not a usable CA certificate: {reason}")]
    Unusable { path: String, reason: String },
}

impl TrustedRoots {
    /// The web PKI and the certificates of the PEM bundle at `path` (one or more
    /// `BEGIN CERTIFICATE` blocks; anything else in the file is ignored).
    pub fn with_bundle(path: &str) -> Result<Self, BundleError> {
        let text = std::fs::read(path)
            .map_err(|source| BundleError::Unreadable { path: path.to_owned(), source })?;
        Self::with_pem(path, &text)
    }

    /// [`Self::with_bundle`] from the bundle's text; `path` only names it in errors.
    pub fn with_pem(path: &str, pem: &[u8]) -> Result<Self, BundleError> {
        let extra = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| BundleError::Malformed { path: path.to_owned(), reason: err.to_string() })?;
        if extra.is_empty() {
            return Err(BundleError::Empty { path: path.to_owned() });
        }
        let mut check = rustls::RootCertStore::empty();
        for certificate in &extra {
            check
                .add(certificate.clone())
                .map_err(|err| BundleError::Unusable { path: path.to_owned(), reason: err.to_string() })?;
        }
        Ok(Self { extra })
    }

    /// How many certificates the bundle added.
    pub fn extra_count(&self) -> usize {
        self.extra.len()
    }

    /// A client configuration verifying servers against these roots.
    pub fn client_config(&self) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        for certificate in &self.extra {
            roots.add(certificate.clone()).expect("checked when the bundle was read");
        }
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports rustls's default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth()
    }
}

/// `reqwest::Client::builder()`, once rustls has its crypto provider: with TLS compiled in,
/// reqwest builds every client's TLS from the process-wide provider, and panics without one.
/// Every HTTP client of the project (and of its tests and benches) starts here.
pub fn client_builder() -> reqwest::ClientBuilder {
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        // Err only when another provider was installed first, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
}

/// A client with reqwest's defaults (see [`client_builder`]).
pub fn client() -> reqwest::Client {
    client_builder().build().expect("a client with reqwest's defaults builds")
}

/// The certificate problem behind a failed request, if TLS verification is what failed.
pub fn certificate_problem(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        // io::Error's `source` skips the error it wraps, and rustls's errors travel wrapped,
        // sometimes in an io::Error inside another: look inside each layer.
        let mut layer = current;
        loop {
            if let Some(rustls::Error::InvalidCertificate(problem)) = layer.downcast_ref::<rustls::Error>() {
                return Some(describe(problem));
            }
            match layer.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
                Some(inner) => layer = inner,
                None => break,
            }
        }
        cause = current.source();
    }
    None
}

fn describe(problem: &rustls::CertificateError) -> String {
    match problem {
        rustls::CertificateError::UnknownIssuer => {
            "it is signed by a CA this server does not trust".to_owned()
        }
        rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. } => {
            "it has expired".to_owned()
        }
        rustls::CertificateError::NotValidForName
        | rustls::CertificateError::NotValidForNameContext { .. } => {
            "it is not valid for this host name".to_owned()
        }
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_must_hold_usable_certificates() {
        assert!(matches!(TrustedRoots::with_pem("x.pem", b"nothing here"), Err(BundleError::Empty { .. })));
        let garbled = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(TrustedRoots::with_pem("x.pem", garbled).is_err());
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap();
        let roots = TrustedRoots::with_pem("ca.pem", ca.pem().as_bytes()).unwrap();
        assert_eq!(roots.extra_count(), 1);
        roots.client_config();
    }
}
