//! `/etc/hosts` and `localhost`: names answered on this machine before any name server is
//! asked, as c-ares (Envoy's resolver) does. Their answers carry no TTL.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The system hosts file.
pub(crate) const HOSTS_PATH: &str = "/etc/hosts";

/// Addresses of `name` (case-insensitive, trailing dot ignored) in hosts-file `text`, of
/// the family `v6` selects, in file order without duplicates.
pub(crate) fn lookup(text: &str, name: &str, v6: bool) -> Vec<IpAddr> {
    let name = normalize(name);
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        let Some(Ok(ip)) = fields.next().map(str::parse::<IpAddr>) else {
            continue;
        };
        if ip.is_ipv6() != v6 || found.contains(&ip) {
            continue;
        }
        if fields.any(|alias| normalize(alias) == name) {
            found.push(ip);
        }
    }
    found
}

/// `localhost` and names under it (RFC 6761) resolve to loopback when the hosts file
/// does not list them, as c-ares does.
pub(crate) fn loopback(name: &str, v6: bool) -> Option<IpAddr> {
    let name = normalize(name);
    if name != "localhost" && !name.ends_with(".localhost") {
        return None;
    }
    Some(if v6 {
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    })
}

fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTS: &str = "# comment\n127.0.0.1 localhost\n::1 localhost ip6-localhost\n\
        10.0.0.1  Backend.Test backend # trailing comment\n10.0.0.2 backend.test\n\
        10.0.0.1 backend.test\nnot-an-ip backend.test\n";

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn finds_every_address_of_a_name_and_family_in_order() {
        assert_eq!(
            lookup(HOSTS, "backend.test", false),
            vec![ip("10.0.0.1"), ip("10.0.0.2")]
        );
        assert_eq!(
            lookup(HOSTS, "BACKEND.test.", false),
            vec![ip("10.0.0.1"), ip("10.0.0.2")]
        );
        assert_eq!(lookup(HOSTS, "backend", false), vec![ip("10.0.0.1")]);
        assert_eq!(lookup(HOSTS, "backend.test", true), Vec::<IpAddr>::new());
        assert_eq!(lookup(HOSTS, "ip6-localhost", true), vec![ip("::1")]);
        assert_eq!(lookup(HOSTS, "comment", false), Vec::<IpAddr>::new());
    }

    #[test]
    fn localhost_names_fall_back_to_loopback() {
        assert_eq!(loopback("localhost", false), Some(ip("127.0.0.1")));
        assert_eq!(loopback("LocalHost.", true), Some(ip("::1")));
        assert_eq!(loopback("api.localhost", false), Some(ip("127.0.0.1")));
        assert_eq!(loopback("localhost.example", false), None);
        assert_eq!(loopback("notlocalhost", false), None);
    }
}
