//! The caller's network address, as the gateway judges it: the connection's peer, unless the
//! peer is a trusted proxy (`QI_TRUSTED_PROXIES`: behind the production ingress every
//! caller's peer is the ingress controller). Then it is the right-most address in
//! `X-Forwarded-For` that is not itself a trusted proxy: each proxy appends the address it
//! saw, and anything further left was written by the caller, so it is never believed.

use std::net::IpAddr;

use qi_platform::config::Cidr;

/// The client address of a call from `peer` carrying `headers`.
pub(crate) fn address(
    peer: Option<IpAddr>,
    headers: &http::HeaderMap,
    trusted: &[Cidr],
) -> Option<IpAddr> {
    let mut client = peer?;
    let is_trusted = |a: IpAddr| trusted.iter().any(|c| c.contains(a));
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.iter().rev() {
        if !is_trusted(client) {
            break;
        }
        match hop.parse() {
            Ok(addr) => client = addr,
            // A hop we cannot read: the last address we could is the best we know.
            Err(_) => break,
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(peer: &str, xff: &[&str], trusted: &[&str]) -> String {
        let mut headers = http::HeaderMap::new();
        for v in xff {
            headers.append("x-forwarded-for", v.parse().unwrap());
        }
        let trusted: Vec<Cidr> = trusted.iter().map(|t| t.parse().unwrap()).collect();
        address(Some(peer.parse().unwrap()), &headers, &trusted)
            .unwrap()
            .to_string()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        // No trusted proxy: the peer, whatever the header says.
        assert_eq!(judge("198.51.100.4", &["203.0.113.9"], &[]), "198.51.100.4");
        // The ingress is trusted: the address it saw.
        assert_eq!(
            judge("10.0.0.5", &["203.0.113.9"], &["10.0.0.0/8"]),
            "203.0.113.9"
        );
        // A caller's own forged entries to the left are ignored.
        assert_eq!(
            judge("10.0.0.5", &["1.2.3.4, 203.0.113.9"], &["10.0.0.0/8"]),
            "203.0.113.9"
        );
        // Two proxies deep (both trusted), and the header split over two lines.
        assert_eq!(
            judge(
                "10.0.0.5",
                &["1.2.3.4, 203.0.113.9", "10.0.0.7"],
                &["10.0.0.0/8"]
            ),
            "203.0.113.9"
        );
        // An unreadable hop: the last address read.
        assert_eq!(
            judge("10.0.0.5", &["203.0.113.9, junk"], &["10.0.0.0/8"]),
            "10.0.0.5"
        );
        // A trusted peer with no header.
        assert_eq!(judge("10.0.0.5", &[], &["10.0.0.0/8"]), "10.0.0.5");
    }
}
