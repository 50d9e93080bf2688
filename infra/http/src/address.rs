//! Whether an address names this host: compression and other costs that pay only across a network
//! are skipped for a service on loopback.

/// Whether `address` (`[scheme://][user@]host[:port][/path]`, the host possibly a bracketed IPv6
/// address) names this host: `localhost` in any case, or a loopback IP address.
pub fn is_this_host(address: &str) -> bool {
    let after_scheme = address
        .trim()
        .split_once("://")
        .map_or(address.trim(), |(_, rest)| rest);
    let authority = after_scheme.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = match host_port.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => host_port,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
