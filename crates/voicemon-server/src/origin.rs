//! Browsers: which web origins may call voicemon, and which `Host` names a server without
//! API keys answers to.
//!
//! A page on any site can make the browser send a simple request (a `text/plain` POST,
//! a WebSocket) to `127.0.0.1`, and a DNS name rebound to `127.0.0.1` reaches it under a
//! foreign `Host`. A server without keys trusts its caller, so it answers only requests
//! that name it by a loopback name and come from its own origin or an allowed one; the
//! live WebSocket checks `Origin` whatever the keys ([`browser_may_call`]).

use std::net::IpAddr;
use url::{Host, Origin, Url};

/// The web origins, besides voicemon's own, whose pages may call it
/// (`[server] allowed_origins`), e.g. a dashboard at `https://grafana.example.com`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins(Vec<Origin>);

/// An allowed origin that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not an origin such as https://grafana.example.com ({why})")]
pub struct OriginError {
    text: String,
    why: String,
}

impl AllowedOrigins {
    /// Reads origins: `scheme://host[:port]`, `http` or `https`, nothing after the host.
    pub fn parse<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<AllowedOrigins, OriginError> {
        texts.into_iter().map(parse_origin).collect::<Result<_, _>>().map(AllowedOrigins)
    }

    /// Each origin as a browser writes it in `Origin`.
    pub fn texts(&self) -> Vec<String> {
        self.0.iter().map(Origin::ascii_serialization).collect()
    }

    fn contains(&self, origin: &Origin) -> bool {
        self.0.contains(origin)
    }

    /// Whether `host` (a `Host` header) is the host and port of an allowed origin.
    fn names(&self, host: &str) -> bool {
        self.0.iter().any(|origin| match origin {
            Origin::Tuple(scheme, ..) => origin_of(scheme, host).as_ref() == Some(origin),
            Origin::Opaque(_) => false,
        })
    }
}

fn parse_origin(text: &str) -> Result<Origin, OriginError> {
    let error = |why: &str| OriginError { text: text.to_owned(), why: why.to_owned() };
    let url = Url::parse(text.trim()).map_err(|err| error(&err.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(error("the scheme must be http or https"));
    }
    let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
    if !bare || !url.username().is_empty() || url.password().is_some() {
        return Err(error("an origin has no user, path, query or fragment"));
    }
    Ok(url.origin())
}

/// The origin a browser would give a page at `scheme://host`.
fn origin_of(scheme: &str, host: &str) -> Option<Origin> {
    let url = Url::parse(&format!("{scheme}://{host}")).ok()?;
    let bare = url.path() == "/" && url.username().is_empty() && url.password().is_none();
    (bare && url.query().is_none()).then(|| url.origin())
}

/// Whether a page at `origin` (an `Origin` header) may call voicemon reached as `host`
/// (the `Host` header): its own origin (the built-in page at `/`), or an allowed one.
/// `null` (a sandboxed page, a file) is never allowed.
pub fn browser_may_call(origin: &str, host: Option<&str>, allowed: &AllowedOrigins) -> bool {
    let Ok(url) = Url::parse(origin.trim()) else { return false };
    let origin = url.origin();
    if !origin.is_tuple() {
        return false;
    }
    let same = host.and_then(|host| origin_of(url.scheme(), host)).is_some_and(|own| own == origin);
    same || allowed.contains(&origin)
}

/// Whether a server without keys answers a request that names it `host` (the `Host`
/// header): a loopback name or address with any port (`localhost`, `*.localhost`,
/// `127.0.0.0/8`, `[::1]`), or the host of an allowed origin.
pub fn is_own_host(host: &str, allowed: &AllowedOrigins) -> bool {
    let loopback = Url::parse(&format!("http://{host}")).ok().is_some_and(|url| {
        let bare = url.path() == "/" && url.username().is_empty() && url.query().is_none();
        bare && match url.host() {
            Some(Host::Domain(name)) => name == "localhost" || name.ends_with(".localhost"),
            Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(Host::Ipv6(ip)) => {
                ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
            None => false,
        }
    });
    loopback || allowed.names(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(texts: &[&str]) -> AllowedOrigins {
        AllowedOrigins::parse(texts.iter().copied()).expect("origins")
    }

    #[test]
    fn loopback_names_and_addresses_with_any_port_are_the_hosts_own() {
        let none = AllowedOrigins::default();
        for host in
            ["localhost", "localhost:3001", "LOCALHOST:80", "app.localhost:9", "127.0.0.1", "127.0.0.1:3001"]
        {
            assert!(is_own_host(host, &none), "{host}");
        }
        for host in ["127.1.2.3:8080", "[::1]", "[::1]:3001", "[::ffff:127.0.0.1]:3001"] {
            assert!(is_own_host(host, &none), "{host}");
        }
    }

    #[test]
    fn foreign_names_and_addresses_are_not_the_hosts_own() {
        let none = AllowedOrigins::default();
        for host in [
            "evil.example",
            "evil.example:3001",
            "localhost.evil.example",
            "10.0.0.5:3001",
            "[::2]",
            "0.0.0.0",
            "",
        ] {
            assert!(!is_own_host(host, &none), "{host}");
        }
    }

    #[test]
    fn the_host_of_an_allowed_origin_is_answered_too() {
        let allowed = allowed(&["https://mon.example.com", "http://dash.example:8080"]);
        assert!(is_own_host("mon.example.com", &allowed));
        assert!(is_own_host("dash.example:8080", &allowed));
        assert!(!is_own_host("dash.example:8081", &allowed));
        assert!(!is_own_host("evil.example", &allowed));
    }

    #[test]
    fn a_page_of_the_same_origin_may_call_and_another_may_not() {
        let none = AllowedOrigins::default();
        assert!(browser_may_call("http://127.0.0.1:3001", Some("127.0.0.1:3001"), &none));
        assert!(browser_may_call("http://localhost", Some("localhost:80"), &none));
        assert!(!browser_may_call("http://127.0.0.1:3002", Some("127.0.0.1:3001"), &none));
        assert!(!browser_may_call("https://evil.example", Some("127.0.0.1:3001"), &none));
        assert!(!browser_may_call("null", Some("127.0.0.1:3001"), &none));
        assert!(!browser_may_call("http://127.0.0.1:3001", None, &none));
    }

    #[test]
    fn an_allowed_origin_may_call_from_anywhere() {
        let allowed = allowed(&["https://grafana.example.com"]);
        assert!(browser_may_call("https://grafana.example.com", Some("127.0.0.1:3001"), &allowed));
        assert!(browser_may_call("https://GRAFANA.example.com:443", Some("127.0.0.1:3001"), &allowed));
        assert!(!browser_may_call("http://grafana.example.com", Some("127.0.0.1:3001"), &allowed));
    }

    #[test]
    fn an_allowed_origin_is_only_scheme_host_and_port() {
        assert_eq!(allowed(&["https://a.example/"]).texts(), vec!["https://a.example".to_owned()]);
        for bad in ["a.example", "ftp://a.example", "https://a.example/path", "https://u@a.example", "null"] {
            assert!(AllowedOrigins::parse([bad]).is_err(), "{bad}");
        }
    }
}
