//! Outbound HTTP: the one way voicemon builds an HTTP client (receivers, the simulator,
//! the `alerts` command line), so every one speaks HTTPS through rustls, verifying
//! certificates against the system trust store (`SSL_CERT_FILE` / `SSL_CERT_DIR` honoured),
//! and every failure is reported with its whole cause chain. It lives here, beside the
//! TLS configuration it uses, so the server and the simulator share it without either
//! depending on the other.

use std::time::Duration;

/// A client builder with voicemon's TLS configuration. When no trust root can be loaded
/// the client still speaks plain HTTP, and every HTTPS request fails with the reason.
pub fn client_builder() -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder().user_agent(concat!("voicemon/", env!("CARGO_PKG_VERSION")));
    match crate::client_config() {
        Ok(config) => builder.use_preconfigured_tls((*config).clone()),
        Err(err) => {
            tracing::error!(error = %err, "no trusted root certificates: HTTPS requests will fail");
            builder
        }
    }
}

/// A client with a timeout per request.
pub fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    client_builder().timeout(timeout).build().map_err(|err| crate::error_chain(&err))
}

/// A request error with all its causes (`error sending request: … : invalid peer
/// certificate: UnknownIssuer`), without the URL, which may be secret (Slack's is).
pub fn describe_error(err: reqwest::Error) -> String {
    crate::error_chain(&err.without_url())
}

/// Whether `url` sends in clear text over a network: `http://` to a host that is not
/// loopback. Such a receiver still works; configuration checks warn about it.
pub fn is_plain_http_off_machine(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else { return false };
    if parsed.scheme() != "http" {
        return false;
    }
    let Some(host) = parsed.host_str() else { return false };
    match host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>() {
        Ok(ip) => !ip.is_loopback(),
        Err(_) => !host.eq_ignore_ascii_case("localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::is_plain_http_off_machine;

    #[test]
    fn plain_http_is_flagged_only_when_it_leaves_the_machine() {
        assert!(is_plain_http_off_machine("http://hooks.example.com/services/T/B/x"));
        assert!(is_plain_http_off_machine("http://10.0.0.7:9093"));
        assert!(!is_plain_http_off_machine("https://hooks.slack.com/services/T/B/x"));
        assert!(!is_plain_http_off_machine("http://127.0.0.1:9093"));
        assert!(!is_plain_http_off_machine("http://localhost:9093"));
        assert!(!is_plain_http_off_machine("http://[::1]:9093"));
    }
}
