//! The client's address, for per-address throttling: the TCP peer, or — only when the
//! peer is a proxy listed in `TRUSTED_PROXIES` — the last hop of `X-Forwarded-For`, the
//! address that proxy saw. Earlier hops are whatever the client chose to send, so they
//! are never used.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;
use shopkit::config::{ConfigError, Settings};

use crate::startup::AppState;

pub const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// Networks whose connections are proxies that append the client to `X-Forwarded-For`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// `TRUSTED_PROXIES`: comma-separated addresses or CIDR networks
    /// (`172.16.0.0/12, 10.0.0.1`); unset trusts nobody.
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        settings
            .get("TRUSTED_PROXIES")
            .map_or(Ok(Self::default()), Self::parse)
            .map_err(|problem| ConfigError {
                name: "TRUSTED_PROXIES".into(),
                problem,
            })
    }

    pub fn parse(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                IpNet::from_str(item)
                    .or_else(|_| IpAddr::from_str(item).map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| {
                        format!("has {item:?}, which is neither an IP address nor a CIDR network")
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address given the peer and the request headers.
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer.map(|ip| ip.to_canonical())?;
        if !self.trusts(peer) {
            return Some(peer);
        }
        Some(last_forwarded_hop(headers).unwrap_or(peer))
    }
}

/// The right-most entry of all `X-Forwarded-For` headers, if it is an address.
fn last_forwarded_hop(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .rfind(|hop| !hop.is_empty())?;
    IpAddr::from_str(last)
        .or_else(|_| SocketAddr::from_str(last).map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// The client address of a request (`None` when the server was not started with
/// connection info, as in `oneshot` tests: all such requests share one bucket).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        Ok(Self(state.trusted_proxies().client(peer, &parts.headers)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let none = TrustedProxies::default();
        let h = headers(&["1.1.1.1, 2.2.2.2"]);
        assert_eq!(none.client(Some(ip("10.0.0.5")), &h), Some(ip("10.0.0.5")));
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.168.1.1").unwrap();
        assert_eq!(
            proxies.client(Some(ip("10.0.0.5")), &h),
            Some(ip("2.2.2.2")),
            "the last hop"
        );
        assert_eq!(
            proxies.client(Some(ip("192.168.1.1")), &h),
            Some(ip("2.2.2.2"))
        );
        assert_eq!(
            proxies.client(Some(ip("192.168.1.2")), &h),
            Some(ip("192.168.1.2"))
        );
        // Several headers are one list; the last hop is the last entry of the last one.
        let h = headers(&["6.6.6.6", "3.3.3.3"]);
        assert_eq!(
            proxies.client(Some(ip("10.1.1.1")), &h),
            Some(ip("3.3.3.3"))
        );
        // No header, or garbage: the peer itself.
        assert_eq!(
            proxies.client(Some(ip("10.1.1.1")), &HeaderMap::new()),
            Some(ip("10.1.1.1"))
        );
        let h = headers(&["1.1.1.1, not-an-ip"]);
        assert_eq!(
            proxies.client(Some(ip("10.1.1.1")), &h),
            Some(ip("10.1.1.1"))
        );
        assert_eq!(proxies.client(None, &h), None);
    }

    #[test]
    fn mapped_ipv6_and_ports_are_normalised() {
        let proxies = TrustedProxies::parse("127.0.0.1").unwrap();
        let h = headers(&["[2001:db8::1]:443"]);
        assert_eq!(
            proxies.client(Some(ip("::ffff:127.0.0.1")), &h),
            Some(ip("2001:db8::1"))
        );
        let h = headers(&["203.0.113.9:5000"]);
        assert_eq!(
            proxies.client(Some(ip("127.0.0.1")), &h),
            Some(ip("203.0.113.9"))
        );
    }

    #[test]
    fn malformed_lists_are_refused() {
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.internal").is_err());
        assert_eq!(
            TrustedProxies::parse(" , ").unwrap(),
            TrustedProxies::default()
        );
        assert!(
            TrustedProxies::parse("fd00::/8")
                .unwrap()
                .trusts(ip("fd12::1"))
        );
    }
}
