//! Port stripping on Host / `:authority` (`strip_matching_host_port`,
//! `strip_any_host_port`), with Envoy's reading of what a port is.

/// The host without its port, when it has one that may be stripped: any port when
/// `only_port` is None, else only that one. A port is what follows the last `:` outside an
/// IPv6 literal's brackets, read as Envoy reads it (decimal, optional `+`, surrounding
/// ASCII whitespace allowed, must fit 32 bits), so `host:` or `host:abc` keep their text.
pub fn strip_port(host: &str, only_port: Option<u16>) -> Option<&str> {
    let colon = host.rfind(':')?;
    if host.rfind(']').is_some_and(|bracket| bracket > colon) {
        // `[::1]`: the colons are inside the literal.
        return None;
    }
    let port = parse_port(&host[colon + 1..])?;
    if only_port.is_some_and(|wanted| u32::from(wanted) != port) {
        return None;
    }
    Some(&host[..colon])
}

fn parse_port(text: &str) -> Option<u32> {
    let text = text.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b');
    let digits = text.strip_prefix('+').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checked against Envoy 1.40 (listener port 19008 for the matching cases).
    #[test]
    fn strips_ports_as_envoy() {
        assert_eq!(strip_port("example.com:80", None), Some("example.com"));
        assert_eq!(strip_port("example.com:1", None), Some("example.com"));
        assert_eq!(strip_port("example.com:+5", None), Some("example.com"));
        assert_eq!(strip_port("[::1]:80", None), Some("[::1]"));
        assert_eq!(strip_port("a:b:5", None), Some("a:b"));
        assert_eq!(strip_port("example.com", None), None);
        assert_eq!(strip_port("example.com:", None), None);
        assert_eq!(strip_port("example.com:abc", None), None);
        assert_eq!(strip_port("example.com:-1", None), None);
        assert_eq!(strip_port("example.com:99999999999", None), None);
        assert_eq!(strip_port("[::1]", None), None);
        assert_eq!(
            strip_port("example.com:19008", Some(19008)),
            Some("example.com")
        );
        assert_eq!(
            strip_port("example.com:019008", Some(19008)),
            Some("example.com")
        );
        assert_eq!(strip_port("example.com:80", Some(19008)), None);
        assert_eq!(strip_port("example.com:84544", Some(19008)), None);
    }
}
