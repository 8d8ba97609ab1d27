//! TLS to PostgreSQL, configured as libpq is: `sslmode` and `sslrootcert` in
//! `DATABASE_URL` (or `PGSSLMODE` / `PGSSLROOTCERT`), through rustls.
//!
//! | `sslmode` | encrypted | the server's certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow`, `prefer` (default) | when the server offers it | checked against the root certificate when there is one, else not |
//! | `require` | always | as `prefer` |
//! | `verify-ca` | always | chain up to the root certificate |
//! | `verify-full` | always | chain, and it names the host |
//!
//! The root certificate is `sslrootcert` (a PEM file), `~/.postgresql/root.crt` when it
//! exists, or the system store with `sslrootcert=system` (which, as in libpq, only goes
//! with `verify-full`). tokio-postgres knows neither `verify-*` nor `sslrootcert`, so
//! they are taken out of the URL here and the connector carries them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;
use voicemon_tls::{rustls::RootCertStore, Verification};

use crate::StoreError;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Result<SslMode, StoreError> {
        Ok(match text {
            "disable" => SslMode::Disable,
            // tokio-postgres cannot try plain text first; TLS when offered is the safer of the two.
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(config_error(format!(
                    "sslmode `{other}` is not one of disable, allow, prefer, require, verify-ca, verify-full"
                )))
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the root certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RootCert {
    /// `sslrootcert=path`, or `~/.postgresql/root.crt`.
    File(PathBuf),
    /// `sslrootcert=system`.
    System,
    /// None given and no `~/.postgresql/root.crt`.
    Absent,
}

/// The TLS part of a PostgreSQL connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTls {
    pub mode: SslMode,
    root: RootCert,
}

/// Takes the TLS options out of `url`: the URL tokio-postgres is given (with `sslmode`
/// one it knows) and what the connector must do. Environment variables `PGSSLMODE` and
/// `PGSSLROOTCERT` apply when the URL does not say.
pub fn split_url(url: &str) -> Result<(String, PgTls), StoreError> {
    split_url_with(url, |name| std::env::var(name).ok(), home_root_cert())
}

fn home_root_cert() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    Some(Path::new(&home).join(".postgresql/root.crt")).filter(|path| path.exists())
}

fn split_url_with(
    url: &str,
    env: impl Fn(&str) -> Option<String>,
    default_root: Option<PathBuf>,
) -> Result<(String, PgTls), StoreError> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let (mut mode, mut root) = (None, None);
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy().into_owned();
        match name {
            "sslmode" => mode = Some(value),
            "sslrootcert" => root = Some(value),
            "sslcert" | "sslkey" | "sslpassword" => {
                return Err(config_error(format!(
                    "`{name}`: client certificates are not supported; authenticate with a password"
                )))
            }
            _ => kept.push(pair),
        }
    }
    let mode = SslMode::parse(&mode.or_else(|| env("PGSSLMODE")).unwrap_or_else(|| "prefer".into()))?;
    let root = match root.or_else(|| env("PGSSLROOTCERT")) {
        Some(value) if value == "system" => RootCert::System,
        Some(value) => RootCert::File(PathBuf::from(value)),
        None => default_root.map(RootCert::File).unwrap_or(RootCert::Absent),
    };
    if root == RootCert::System && mode != SslMode::VerifyFull {
        return Err(config_error(format!(
            "sslrootcert=system goes with sslmode=verify-full only (got sslmode={})",
            mode.as_str()
        )));
    }
    kept.push(match mode {
        SslMode::Disable => "sslmode=disable",
        SslMode::Prefer => "sslmode=prefer",
        _ => "sslmode=require",
    });
    Ok((format!("{base}?{}", kept.join("&")), PgTls { mode, root }))
}

impl PgTls {
    /// The rustls connector; errors (a missing or unreadable root certificate) are the
    /// configuration's, reported at start.
    pub fn connector(&self) -> Result<MakeRustlsConnect, StoreError> {
        let roots = match &self.root {
            RootCert::File(path) => Some(Arc::new(read_roots(path)?)),
            RootCert::System => {
                Some(voicemon_tls::system_roots().map_err(|err| config_error(err.to_string()))?)
            }
            RootCert::Absent => None,
        };
        let verification = match (self.mode, roots) {
            (SslMode::VerifyFull, Some(roots)) => Verification::Full(roots),
            // libpq checks the chain whenever it has a root certificate.
            (_, Some(roots)) => Verification::ChainOnly(roots),
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
                return Err(config_error(format!(
                    "sslmode={} needs a root certificate to check the server against, and there is none: \
                     add sslrootcert=/path/to/ca.pem to DATABASE_URL (or sslrootcert=system for the \
                     system's trust store), or put it at ~/.postgresql/root.crt",
                    self.mode.as_str()
                )))
            }
            (_, None) => Verification::None,
        };
        Ok(MakeRustlsConnect::new(voicemon_tls::config_with(verification)))
    }
}

fn read_roots(path: &Path) -> Result<RootCertStore, StoreError> {
    voicemon_tls::roots_from_pem_file(path).map_err(|err| config_error(format!("sslrootcert: {err}")))
}

fn config_error(message: String) -> StoreError {
    StoreError::Config(format!("DATABASE_URL: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> Result<(String, PgTls), StoreError> {
        split_url_with(url, |_| None, None)
    }

    #[test]
    fn the_default_is_libpqs_prefer_without_verification() {
        let (url, tls) = split("postgres://u:p@db/metrics").unwrap();
        assert_eq!(url, "postgres://u:p@db/metrics?sslmode=prefer");
        assert_eq!(tls, PgTls { mode: SslMode::Prefer, root: RootCert::Absent });
    }

    #[test]
    fn verify_modes_and_the_root_certificate_leave_the_url_and_other_options_stay() {
        let (url, tls) = split(
            "postgres://db/metrics?application_name=vm&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(url, "postgres://db/metrics?application_name=vm&sslmode=require");
        assert_eq!(tls, PgTls { mode: SslMode::VerifyFull, root: RootCert::File("/etc/ca.pem".into()) });
    }

    #[test]
    fn environment_variables_apply_when_the_url_is_silent() {
        let env = |name: &str| match name {
            "PGSSLMODE" => Some("verify-ca".to_owned()),
            "PGSSLROOTCERT" => Some("/ca.pem".to_owned()),
            _ => None,
        };
        let (_, tls) = split_url_with("postgres://db/m", env, None).unwrap();
        assert_eq!(tls, PgTls { mode: SslMode::VerifyCa, root: RootCert::File("/ca.pem".into()) });
        let (_, tls) = split_url_with("postgres://db/m?sslmode=disable", env, None).unwrap();
        assert_eq!(tls.mode, SslMode::Disable);
    }

    #[test]
    fn a_home_root_certificate_makes_require_check_the_chain() {
        let (_, tls) =
            split_url_with("postgres://db/m?sslmode=require", |_| None, Some("/h/root.crt".into())).unwrap();
        assert_eq!(tls.root, RootCert::File("/h/root.crt".into()));
    }

    #[test]
    fn bad_tls_options_are_refused_with_a_reason() {
        let message = |url: &str| split(url).unwrap_err().to_string();
        assert!(message("postgres://db/m?sslmode=strict").contains("sslmode `strict`"));
        assert!(message("postgres://db/m?sslmode=require&sslrootcert=system").contains("verify-full only"));
        assert!(message("postgres://db/m?sslcert=/c.pem").contains("client certificates"));
    }

    #[test]
    fn verify_full_without_a_root_certificate_is_refused_before_connecting() {
        let (_, tls) = split("postgres://db/m?sslmode=verify-full").unwrap();
        let error = tls.connector().err().expect("no root certificate").to_string();
        assert!(error.contains("sslmode=verify-full needs a root certificate"), "{error}");
        assert!(error.contains("sslrootcert="), "{error}");
    }
}
