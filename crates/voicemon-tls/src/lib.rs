//! TLS for every connection voicemon opens (HTTPS receivers, the simulator, PostgreSQL,
//! Redis), through rustls with the ring provider: no OpenSSL.
//!
//! # Layout
//! - [`system_roots`]: the trust store: the system's certificates, or the files that
//!   `SSL_CERT_FILE` / `SSL_CERT_DIR` name, as OpenSSL-based tools read them.
//! - [`roots_from_pem_file`]: a trust store from one PEM file (PostgreSQL's `sslrootcert`).
//! - [`client_config`]: a client configuration that verifies the peer's chain and name
//!   against the system store; [`Verification`] and [`config_with`] for the weaker
//!   checks PostgreSQL's `sslmode` asks for.
//! - [`error_chain`]: an error and all its causes on one line, so a failed handshake
//!   says `invalid peer certificate: UnknownIssuer`, not only `error sending request`.
//! - `http` (feature `http`): the one HTTP client builder, on [`client_config`], used by
//!   the server's receivers, the `alerts` command line and the simulator.
//!
//! Nothing here skips verification unless the caller names [`Verification::None`],
//! which only PostgreSQL's `sslmode=prefer|require` (libpq's own meaning) does.

#[cfg(feature = "http")]
pub mod http;
mod verify;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::path::Path;
use std::sync::{Arc, OnceLock};

pub use rustls;

/// Why a trust store or client configuration could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// The system store (or `SSL_CERT_FILE` / `SSL_CERT_DIR`) gave no usable certificate.
    #[error("no trusted root certificates could be loaded ({0})")]
    NoRoots(String),
    /// A PEM file named by the configuration could not be read or holds no certificate.
    #[error("cannot read root certificates from {path}: {message}")]
    RootFile { path: String, message: String },
}

/// How much of the server's certificate a client checks, against which roots.
#[derive(Debug, Clone)]
pub enum Verification {
    /// The chain up to one of these roots, and that the certificate names the host.
    Full(Arc<RootCertStore>),
    /// The chain up to one of these roots only (PostgreSQL's `verify-ca`).
    ChainOnly(Arc<RootCertStore>),
    /// Encryption without authentication (PostgreSQL's `prefer` and `require` without a
    /// root certificate, as libpq does). Handshake signatures are still checked.
    None,
}

/// The system's trust roots, loaded once: the certificates that `SSL_CERT_FILE` and
/// `SSL_CERT_DIR` name when either is set (as OpenSSL reads them), the platform's store
/// otherwise. Certificates that cannot be parsed are skipped with a warning.
pub fn system_roots() -> Result<Arc<RootCertStore>, TlsError> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, TlsError>> = OnceLock::new();
    ROOTS.get_or_init(load_system_roots).clone()
}

fn load_system_roots() -> Result<Arc<RootCertStore>, TlsError> {
    let loaded = rustls_native_certs::load_native_certs();
    for error in &loaded.errors {
        tracing::warn!(error = %error, "some trusted root certificates could not be loaded");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
    if ignored > 0 {
        tracing::warn!(ignored, "some trusted root certificates could not be parsed and are not trusted");
    }
    if added == 0 {
        let why = loaded.errors.first().map(ToString::to_string).unwrap_or_else(|| {
            "the system store is empty; install ca-certificates or set SSL_CERT_FILE".to_owned()
        });
        return Err(TlsError::NoRoots(why));
    }
    tracing::debug!(roots = added, "trusted root certificates loaded");
    Ok(Arc::new(roots))
}

/// The certificates of one PEM file as a trust store.
pub fn roots_from_pem_file(path: &Path) -> Result<RootCertStore, TlsError> {
    let failed = |message: String| TlsError::RootFile { path: path.display().to_string(), message };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|err| failed(err.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| failed(err.to_string()))?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(failed("no certificate in it".to_owned()));
    }
    Ok(roots)
}

/// The client configuration for HTTPS receivers and `rediss://`: full verification
/// against [`system_roots`]. Built once; cheap to clone.
pub fn client_config() -> Result<Arc<ClientConfig>, TlsError> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, TlsError>> = OnceLock::new();
    CONFIG.get_or_init(|| Ok(Arc::new(config_with(Verification::Full(system_roots()?))))).clone()
}

/// A client configuration checking the server as `verification` says.
pub fn config_with(verification: Verification) -> ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions");
    let verifier = verify::verifier(verification, provider);
    builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth()
}

/// `error: cause: cause's cause`, each message once (libraries often repeat their
/// source's text in their own).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(error) = next {
        let text = error.to_string();
        if !parts.last().is_some_and(|previous| previous.contains(&text)) {
            parts.push(text);
        }
        next = error.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layer {
        text: &'static str,
        #[source]
        source: Option<Box<Layer>>,
    }

    fn layers(texts: &[&'static str]) -> Layer {
        texts
            .iter()
            .rev()
            .fold(None, |source, text| Some(Layer { text, source: source.map(Box::new) }))
            .unwrap()
    }

    #[test]
    fn an_error_chain_names_every_cause_once() {
        let error = layers(&[
            "error sending request",
            "client error (Connect)",
            "invalid peer certificate: UnknownIssuer",
        ]);
        assert_eq!(
            error_chain(&error),
            "error sending request: client error (Connect): invalid peer certificate: UnknownIssuer"
        );
        let repeated = layers(&["connection refused (os error 111)", "connection refused (os error 111)"]);
        assert_eq!(error_chain(&repeated), "connection refused (os error 111)");
    }

    #[test]
    fn a_pem_file_without_certificates_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let error = roots_from_pem_file(&path).unwrap_err();
        assert!(error.to_string().contains("empty.pem"), "{error}");
        let missing = roots_from_pem_file(&dir.path().join("missing.pem")).unwrap_err();
        assert!(missing.to_string().contains("missing.pem"), "{missing}");
    }

    #[test]
    fn a_generated_ca_in_a_pem_file_becomes_one_trusted_root() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, ca.pem()).unwrap();
        assert_eq!(roots_from_pem_file(&path).unwrap().len(), 1);
    }
}
