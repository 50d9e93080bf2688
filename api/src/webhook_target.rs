//! Where a webhook may be delivered: never inside the network the API runs in.
//!
//! A target URL is resolved, and every address it resolves to must be a public unicast address:
//! not loopback, private, shared (CGNAT), link-local (which holds cloud metadata services at
//! 169.254.169.254), unspecified, broadcast, multicast, documentation or benchmarking ranges, in
//! IPv4 or in IPv6, including IPv4 addresses carried inside IPv6 (mapped, compatible, NAT64,
//! 6to4). The check is made at registration and again at every delivery, and the delivery
//! connects only to the addresses that were checked, so a name that resolves elsewhere later (DNS
//! rebinding) cannot redirect it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why a target is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetRefusal {
    #[error("not a URL: {0}")]
    NotAUrl(String),
    #[error("the URL must be http(s)://host/...")]
    NotHttp,
    #[error(
        "webhooks are delivered over https:// only: over http:// the payload and its signature would travel in cleartext"
    )]
    PlainHttp,
    #[error("`{host}` does not resolve: {reason}")]
    Unresolvable { host: String, reason: String },
    #[error("webhooks may not target loopback, private, link-local or other internal addresses ({0} is one)")]
    Internal(IpAddr),
}

/// A checked target: the URL, and the address its host resolved to, to connect to.
#[derive(Debug, Clone)]
pub struct CheckedTarget {
    pub url: reqwest::Url,
    /// The host name and every address it resolved to (all checked); `None` when the host is an
    /// IP address literal (there is nothing to pin).
    pub pinned: Option<(String, Vec<SocketAddr>)>,
}

/// Parses and resolves `url`, refusing internal addresses unless `allow_internal`.
pub async fn check(url: &str, allow_internal: bool) -> Result<CheckedTarget, TargetRefusal> {
    let parsed = reqwest::Url::parse(url).map_err(|e| TargetRefusal::NotAUrl(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(TargetRefusal::NotHttp);
    }
    // Plain HTTP only where internal targets are allowed too (a local stack, tests).
    if parsed.scheme() == "http" && !allow_internal {
        return Err(TargetRefusal::PlainHttp);
    }
    let port = parsed.port_or_known_default().unwrap_or(443);
    let (addresses, name) = match parsed.host() {
        Some(url::Host::Ipv4(v4)) => (vec![SocketAddr::new(IpAddr::V4(v4), port)], None),
        Some(url::Host::Ipv6(v6)) => (vec![SocketAddr::new(IpAddr::V6(v6), port)], None),
        Some(url::Host::Domain(domain)) => {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((domain, port))
                .await
                .map_err(|e| TargetRefusal::Unresolvable {
                    host: domain.to_owned(),
                    reason: e.to_string(),
                })?
                .collect();
            if resolved.is_empty() {
                return Err(TargetRefusal::Unresolvable {
                    host: domain.to_owned(),
                    reason: "no addresses".to_owned(),
                });
            }
            (resolved, Some(domain.to_owned()))
        }
        None => return Err(TargetRefusal::NotHttp),
    };
    if !allow_internal && let Some(internal) = addresses.iter().find(|a| is_internal(a.ip())) {
        return Err(TargetRefusal::Internal(internal.ip()));
    }
    Ok(CheckedTarget {
        pinned: name.map(|name| (name, addresses)),
        url: parsed,
    })
}

/// Whether `ip` is anything but a public unicast address.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => is_internal_v6(v6),
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_internal_v4(v4);
    }
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated)
        || first == 0x2001 && ip.segments()[1] == 0x0db8 // documentation
        || first == 0x0100 && ip.segments()[1..4] == [0, 0, 0] // discard-only
}

/// The IPv4 address an IPv6 address carries: mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`,
/// NAT64 `64:ff9b::a.b.c.d`, 6to4 `2002:abcd:...`.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let octets = ip.octets();
    let s = ip.segments();
    let low = Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15]);
    let mapped = matches!(s, [0, 0, 0, 0, 0, 0xffff, _, _]);
    let compatible = matches!(s, [0, 0, 0, 0, 0, 0, _, _]) && !ip.is_loopback() && !ip.is_unspecified();
    let nat64 = matches!(s, [0x64, 0xff9b, 0, 0, 0, 0, _, _]);
    if mapped || compatible || nat64 {
        return Some(low);
    }
    // 6to4: 2002:AABB:CCDD::/48 carries AA.BB.CC.DD.
    (s[0] == 0x2002).then(|| Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_in_every_disguise_are_refused() {
        for internal in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "2001:db8::1",
            "ff02::1",
        ] {
            let ip: IpAddr = internal.parse().expect("an address");
            assert!(is_internal(ip), "{internal}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"] {
            let ip: IpAddr = public.parse().expect("an address");
            assert!(!is_internal(ip), "{public}");
        }
    }

    #[tokio::test]
    async fn urls_are_checked_by_what_they_resolve_to() {
        for url in [
            "https://127.0.0.1:9000/hook",
            "https://localhost/hook",
            "https://[::ffff:7f00:1]/hook",
            "https://169.254.169.254/latest/meta-data/",
            "https://2130706433/hook",
            "https://0x7f.1/hook",
        ] {
            assert!(
                matches!(check(url, false).await, Err(TargetRefusal::Internal(_))),
                "{url}"
            );
        }
        assert!(matches!(
            check("ftp://example.com/x", false).await,
            Err(TargetRefusal::NotHttp)
        ));
        assert!(matches!(
            check("http://93.184.215.14/hook", false).await,
            Err(TargetRefusal::PlainHttp)
        ));
        assert!(matches!(
            check("not a url", false).await,
            Err(TargetRefusal::NotAUrl(_))
        ));
        let allowed = check("http://localhost:9000/hook", true).await.expect("allowed");
        assert_eq!(allowed.pinned.map(|(name, _)| name).as_deref(), Some("localhost"));
    }
}
