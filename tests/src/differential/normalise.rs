//! Normalisation of what varies by nature between two runs of the same case, so that Envoy's
//! recorded answer and Baton's live one compare equal when the behaviour is the same:
//!
//! - **Ports** (listener, admin, upstreams, the closed port, the client's own port): every
//!   run binds port 0, so a number equal to one of them becomes `<port:NAME>` in header
//!   values and bodies (e.g. `auto_host_rewrite`, `%DOWNSTREAM_REMOTE_ADDRESS%`, `/clusters`).
//! - **The host's own address**: with `use_remote_address`, Envoy puts the machine's
//!   non-loopback address (its `local_info` address) in `x-forwarded-for` for a loopback
//!   client; it differs from machine to machine and becomes `<host-ip>`.
//! - **`date`** (response): the value becomes `<date>`; whether it is present is compared.
//! - **`x-envoy-upstream-service-time`**: a timing; becomes `<ms>`.
//! - **UUIDs** anywhere (generated `x-request-id`, `%REQ(x-request-id)%` in bodies): become
//!   `<uuid>`; a request id the client sent itself is not a v4 UUID and is compared as is.
//!   A UUID whose version digit (the 15th character) is not `4` keeps it, as
//!   `<uuid:trace-X>`: with HCM `tracing` that digit is the trace reason Envoy packs.
//! - **Bodies** a case marks `ignore` / `json_keys` / `lines` (admin pages whose content is
//!   server-specific: uptimes, build ids, the full stat list): reduced as the case says, and
//!   the `content-length` of such a body becomes `<len>`.
//!
//! Everything else, including `server: envoy`, header presence and header order within one
//! name, is compared exactly. Header names are sorted (order across names is not compared).

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::{json, Value};

use super::spec::BodyMode;
use super::upstream::Received;

/// The address this machine uses towards the outside (no packet is sent: connecting a UDP
/// socket only picks a route), if it has one.
pub fn host_ip() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    Some(socket.local_addr().ok()?.ip())
}

/// Known ports of one run and their names.
#[derive(Debug, Clone, Default)]
pub struct Ports {
    ports: Vec<(u16, String)>,
    host_ip: Option<Regex>,
}

impl Ports {
    /// Adds a port named `name`.
    pub fn add(&mut self, port: u16, name: &str) {
        if port != 0 {
            self.ports.push((port, name.to_string()));
        }
    }

    /// Replaces the machine's own non-loopback address (see the module doc).
    pub fn set_host_ip(&mut self, ip: std::net::IpAddr) {
        if !ip.is_loopback() && !ip.is_unspecified() {
            let pattern = format!(r"\b{}\b", regex::escape(&ip.to_string()));
            self.host_ip = Regex::new(&pattern).ok();
        }
    }

    /// Replaces every maximal digit run equal to a known port, every UUID and the host's
    /// address in `text`.
    pub fn text(&self, text: &str) -> String {
        let uuid = uuid_regex();
        let text = uuid.replace_all(text, |found: &regex::Captures<'_>| {
            match found[0].as_bytes()[14] {
                b'4' => "<uuid>".to_string(),
                reason => format!("<uuid:trace-{}>", char::from(reason)),
            }
        });
        let text = match &self.host_ip {
            Some(re) => re.replace_all(&text, "<host-ip>").into_owned(),
            None => text.into_owned(),
        };
        let mut out = String::with_capacity(text.len());
        let mut digits = String::new();
        let flush = |digits: &mut String, out: &mut String| {
            if !digits.is_empty() {
                match digits
                    .parse::<u16>()
                    .ok()
                    .and_then(|p| self.ports.iter().find(|(port, _)| *port == p))
                {
                    Some((_, name)) => out.push_str(&format!("<port:{name}>")),
                    None => out.push_str(digits),
                }
                digits.clear();
            }
        };
        for c in text.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
            } else {
                flush(&mut digits, &mut out);
                out.push(c);
            }
        }
        flush(&mut digits, &mut out);
        out
    }

    /// Headers as a sorted map (a name's values in order, one string when single).
    pub fn headers(&self, headers: &[(String, String)], body_reduced: bool) -> Value {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in headers {
            let name = name.to_ascii_lowercase();
            let value = match name.as_str() {
                "date" => "<date>".to_string(),
                "x-envoy-upstream-service-time" => "<ms>".to_string(),
                "content-length" if body_reduced => "<len>".to_string(),
                _ => self.text(value),
            };
            map.entry(name).or_default().push(value);
        }
        let map: serde_json::Map<String, Value> = map
            .into_iter()
            .map(|(k, mut v)| {
                let value = if v.len() == 1 {
                    Value::String(v.remove(0))
                } else {
                    json!(v)
                };
                (k, value)
            })
            .collect();
        Value::Object(map)
    }

    /// A body reduced as `mode` says.
    pub fn body(&self, body: &[u8], mode: &BodyMode) -> Value {
        let text = String::from_utf8_lossy(body);
        match mode {
            BodyMode::Exact => Value::String(self.text(&text)),
            BodyMode::Ignore => json!(if body.is_empty() { "" } else { "<ignored>" }),
            BodyMode::JsonKeys => match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(map)) => {
                    let keys: Vec<&String> = map.keys().collect();
                    json!(keys)
                }
                _ => json!(format!(
                    "<not a JSON object: {}>",
                    text.chars().take(80).collect::<String>()
                )),
            },
            BodyMode::Lines(pattern) => match Regex::new(pattern) {
                Ok(re) => {
                    let lines: Vec<String> = text
                        .lines()
                        .filter(|l| re.is_match(l))
                        .map(|l| self.text(l))
                        .collect();
                    json!(lines)
                }
                Err(e) => json!(format!("<bad lines regex: {e}>")),
            },
            BodyMode::Until(marker) => {
                let kept = text
                    .find(marker.as_str())
                    .map_or(&text[..], |at| &text[..at + marker.len()]);
                json!(self.text(kept))
            }
        }
    }

    /// What an upstream received.
    pub fn received(&self, r: &Received) -> Value {
        let mut value = json!({
            "upstream": r.upstream,
            "method": r.method,
            "path": self.text(&r.path),
            "version": r.version,
            "headers": self.headers(&r.headers, false),
            "body": self.text(&String::from_utf8_lossy(&r.body)),
        });
        // Only a TLS upstream's: plain-text fixtures stay as they were.
        if let (Some(tls), Some(object)) = (&r.tls, value.as_object_mut()) {
            object.insert("tls".into(), tls.to_json());
        }
        value
    }
}

fn uuid_regex() -> &'static Regex {
    static UUID: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    UUID.get_or_init(|| {
        Regex::new("[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
            .expect("constant regex")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_uuids_and_host_ip_are_replaced_whole() {
        let mut ports = Ports::default();
        ports.add(41234, "listener");
        ports.set_host_ip("192.0.2.2".parse().expect("ip"));
        assert_eq!(
            ports.text("127.0.0.1:41234 412345 41234x 192.0.2.2 192.0.2.22"),
            "127.0.0.1:<port:listener> 412345 <port:listener>x <host-ip> 192.0.2.22"
        );
        assert_eq!(
            ports.text("id 0f8fad5b-d9cb-469f-a165-70867728950e."),
            "id <uuid>."
        );
        assert_eq!(
            ports.text("0f8fad5b-d9cb-a69f-a165-70867728950e"),
            "<uuid:trace-a>"
        );
    }

    #[test]
    fn headers_are_sorted_and_volatile_values_masked() {
        let ports = Ports::default();
        let headers = vec![
            ("X-B".to_string(), "2".to_string()),
            (
                "date".to_string(),
                "Sat, 05 Dec 2026 22:00:00 GMT".to_string(),
            ),
            ("x-a".to_string(), "1".to_string()),
            ("x-b".to_string(), "3".to_string()),
            ("content-length".to_string(), "12".to_string()),
        ];
        assert_eq!(
            ports.headers(&headers, true),
            json!({ "content-length": "<len>", "date": "<date>", "x-a": "1", "x-b": ["2", "3"] })
        );
    }

    #[test]
    fn bodies_are_reduced_as_asked() {
        let ports = Ports::default();
        let body = br#"{"b": 1, "a": {"x": 2}}"#;
        assert_eq!(ports.body(body, &BodyMode::JsonKeys), json!(["a", "b"]));
        assert_eq!(ports.body(b"x", &BodyMode::Ignore), json!("<ignored>"));
        assert_eq!(
            ports.body(b"a: 1\nb: 2\nab: 3\n", &BodyMode::Lines("^a".into())),
            json!(["a: 1", "ab: 3"])
        );
        assert_eq!(
            ports.body(b"reason: TLS error 42", &BodyMode::Until("reason: ".into())),
            json!("reason: ")
        );
    }
}
