//! A certificate authority made by the test, as an operator's private CA would be: its
//! certificate in a PEM file (for `SSL_CERT_FILE`, `sslrootcert` or Redis), and a server
//! certificate for `localhost` and 127.0.0.1 signed by it.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

pub struct TestCa {
    _dir: tempfile::TempDir,
    /// The CA's certificate (PEM).
    pub ca_file: PathBuf,
    /// The server certificate (PEM) and its key (PKCS #8 PEM), for servers that read files.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    server_cert: CertificateDer<'static>,
    server_key: Vec<u8>,
}

impl TestCa {
    /// One CA per test process.
    pub fn shared() -> &'static TestCa {
        static CA: OnceLock<TestCa> = OnceLock::new();
        CA.get_or_init(TestCa::new)
    }

    pub fn new() -> TestCa {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "voicemon test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("a CA key"))
            .expect("a self-signed CA");

        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("server parameters");
        params.subject_alt_names.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params.distinguished_name.push(DnType::CommonName, "localhost");
        let key = KeyPair::generate().expect("a server key");
        let cert = params.signed_by(&key, &ca).expect("a server certificate signed by the CA");

        let dir = tempfile::tempdir().expect("a directory for the certificates");
        let ca_file = dir.path().join("ca.pem");
        let cert_file = dir.path().join("server.pem");
        let key_file = dir.path().join("server.key");
        std::fs::write(&ca_file, ca.pem()).expect("CA written");
        std::fs::write(&cert_file, cert.pem()).expect("certificate written");
        std::fs::write(&key_file, key.serialize_pem()).expect("key written");
        TestCa {
            _dir: dir,
            ca_file,
            cert_file,
            key_file,
            server_cert: cert.der().clone(),
            server_key: key.serialize_der(),
        }
    }

    /// A rustls server configuration presenting the server certificate.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key.clone()));
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("default protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.server_cert.clone()], key)
            .expect("the certificate and key match");
        Arc::new(config)
    }
}
