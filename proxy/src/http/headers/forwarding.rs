//! Envoy's forwarding headers on the request (`x-forwarded-for`, `x-forwarded-proto`,
//! `x-request-id`, `x-envoy-external-address`, `x-envoy-internal`, internal `x-envoy-*`
//! stripping, `via`) and on the response (`server`, `via`, `date`).

use std::net::{IpAddr, SocketAddr};

use baton_config::model::{CidrRange, HttpConnectionManager, ServerHeaderTransformation};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::base::conn_info::ConnInfo;

/// `x-forwarded-for`
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `x-forwarded-proto`
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `x-request-id`
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `x-envoy-internal`
pub static X_ENVOY_INTERNAL: HeaderName = HeaderName::from_static("x-envoy-internal");
/// `x-envoy-external-address`
pub static X_ENVOY_EXTERNAL_ADDRESS: HeaderName =
    HeaderName::from_static("x-envoy-external-address");
/// `x-envoy-expected-rq-timeout-ms`
pub static X_ENVOY_EXPECTED_RQ_TIMEOUT_MS: HeaderName =
    HeaderName::from_static("x-envoy-expected-rq-timeout-ms");
/// `x-envoy-upstream-service-time`
pub static X_ENVOY_UPSTREAM_SERVICE_TIME: HeaderName =
    HeaderName::from_static("x-envoy-upstream-service-time");

/// A decimal header value for a count of milliseconds without an allocation in the
/// common cases (`x-envoy-upstream-service-time`, `x-envoy-expected-rq-timeout-ms`):
/// single digits are static, and each worker keeps the last other value it made (a
/// route's timeout repeats request after request).
pub fn millis_value(ms: u64) -> HeaderValue {
    const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    if let Some(digit) = usize::try_from(ms).ok().and_then(|i| DIGITS.get(i)) {
        return HeaderValue::from_static(digit);
    }
    thread_local! {
        static LAST: std::cell::RefCell<Option<(u64, HeaderValue)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((value, header)) if *value == ms => header.clone(),
            _ => {
                let header = HeaderValue::from(ms);
                *last = Some((ms, header.clone()));
                header
            }
        }
    })
}

/// `x-forwarded-port`
pub static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
/// `x-envoy-original-path`
pub static X_ENVOY_ORIGINAL_PATH: HeaderName = HeaderName::from_static("x-envoy-original-path");
/// `x-envoy-original-host`
pub static X_ENVOY_ORIGINAL_HOST: HeaderName = HeaderName::from_static("x-envoy-original-host");
/// `x-forwarded-host`
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `via`
pub static VIA: HeaderName = HeaderName::from_static("via");
/// `x-forwarded-client-cert`
pub static X_FORWARDED_CLIENT_CERT: HeaderName = HeaderName::from_static("x-forwarded-client-cert");

/// The address Envoy appends to `x-forwarded-for` for a client on a loopback address
/// (`--local-address-ip-version`): the first non-loopback address of that family on the
/// machine's interfaces, else the family's loopback address.
static LOCAL_ADDRESS: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Picks the local address for `x-forwarded-for` once, at startup (Envoy does it when the
/// server starts, not per request).
pub fn init_local_address(ipv6: bool) {
    let _ = LOCAL_ADDRESS.set(pick_local_address(ipv6).to_string());
}

fn local_address() -> &'static str {
    LOCAL_ADDRESS.get_or_init(|| pick_local_address(false).to_string())
}

/// As Envoy: walk the interface addresses in order, keep the first of the family that is
/// not a loopback address; a machine with none gets the family's loopback address.
fn pick_local_address(ipv6: bool) -> IpAddr {
    let fallback = if ipv6 {
        IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
    } else {
        IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
    };
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return fallback;
    };
    addrs
        .filter_map(|ifa| {
            let addr = ifa.address?;
            if ipv6 {
                addr.as_sockaddr_in6().map(|a| IpAddr::V6(a.ip()))
            } else {
                addr.as_sockaddr_in().map(|a| IpAddr::V4(a.ip()))
            }
        })
        .find(|ip| !ip.is_loopback())
        .unwrap_or(fallback)
}

/// `x-envoy-*` request headers that only trusted (internal) clients may send; removed
/// from edge requests.
const EDGE_STRIPPED: &[&str] = &[
    "x-envoy-decorator-operation",
    "x-envoy-downstream-service-cluster",
    "x-envoy-downstream-service-node",
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-force-trace",
    "x-envoy-hedge-on-per-try-timeout",
    "x-envoy-ip-tags",
    "x-envoy-max-retries",
    "x-envoy-original-host",
    "x-envoy-original-path",
    "x-envoy-original-url",
    "x-envoy-retriable-header-names",
    "x-envoy-retriable-status-codes",
    "x-envoy-retry-grpc-on",
    "x-envoy-retry-on",
    "x-envoy-upstream-alt-stat-name",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-upstream-rq-timeout-alt-response",
    "x-envoy-upstream-rq-timeout-ms",
];

/// Router control headers the router consumes on every request (never forwarded).
const ROUTER_CONSUMED: &[&str] = &[
    "x-envoy-max-retries",
    "x-envoy-retry-on",
    "x-envoy-retry-grpc-on",
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-hedge-on-per-try-timeout",
    "x-envoy-upstream-rq-timeout-alt-response",
];

fn in_cidrs(ip: IpAddr, cidrs: &[CidrRange]) -> bool {
    cidrs.iter().any(|c| match (ip, c.addr) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let len = c.len.min(32) as u32;
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let len = c.len.min(128) as u32;
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    })
}

/// The XFF entries, in order (several header lines are one list).
fn xff_entries(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Request ids made ahead, a block at a time: 256 ids' random bytes drawn from the
/// thread's CSPRNG in one call (as Envoy buffers its random bytes for UUIDs) and their
/// text written into one shared buffer, of which each request's `x-request-id` value is
/// a slice (no allocation per request).
struct RequestIds {
    /// The ids' text, [`uuid_v4`]'s format, back to back.
    text: bytes::Bytes,
    /// Ids of `text` already handed out.
    used: usize,
}

/// Ids per block.
const IDS_PER_BLOCK: usize = 256;

thread_local! {
    static REQUEST_IDS: std::cell::RefCell<RequestIds> = const {
        std::cell::RefCell::new(RequestIds { text: bytes::Bytes::new(), used: IDS_PER_BLOCK })
    };
}

/// Writes a UUIDv4 made of `random` (its version and variant bits set) in canonical
/// text form.
fn format_uuid_v4(mut random: [u8; 16]) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    /// Where each of the 16 bytes' two digits go (after the dashes at 8, 13, 18, 23).
    const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    random[6] = (random[6] & 0x0f) | 0x40;
    random[8] = (random[8] & 0x3f) | 0x80;
    let mut out = [b'-'; 36];
    for (byte, at) in random.iter().zip(AT) {
        out[at] = HEX[usize::from(byte >> 4)];
        out[at + 1] = HEX[usize::from(byte & 0x0f)];
    }
    out
}

/// A new random UUIDv4 as a header value (`x-request-id`), from this thread's block.
pub fn request_id_value() -> HeaderValue {
    let id = REQUEST_IDS.with_borrow_mut(|ids| {
        if ids.used == IDS_PER_BLOCK {
            let mut random = vec![0u8; 16 * IDS_PER_BLOCK];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut random);
            let mut text = Vec::with_capacity(36 * IDS_PER_BLOCK);
            for bytes in random.chunks_exact(16) {
                let mut one = [0u8; 16];
                one.copy_from_slice(bytes);
                text.extend_from_slice(&format_uuid_v4(one));
            }
            ids.text = bytes::Bytes::from(text);
            ids.used = 0;
        }
        let at = ids.used * 36;
        ids.used += 1;
        ids.text.slice(at..at + 36)
    });
    // Built unchecked: the id is hex digits and dashes, all valid in a header value.
    #[allow(unsafe_code)]
    // SAFETY: every byte is ASCII (`[0-9a-f-]`), valid in a header value and UTF-8.
    unsafe {
        HeaderValue::from_maybe_shared_unchecked(id)
    }
}

/// What the forwarding step decided about the client.
#[derive(Debug, Clone, Copy)]
pub struct ClientFacts {
    /// The trusted client address (`%DOWNSTREAM_REMOTE_ADDRESS%`); port 0 when it came
    /// from `x-forwarded-for`.
    pub remote: SocketAddr,
    /// Internal request (from an address in `internal_address_config`).
    pub internal: bool,
    /// Edge request: external and `use_remote_address`.
    pub edge: bool,
}

/// Which forwarding headers a request arrived with ([`mutate_request`]'s first pass).
#[derive(Debug, Default, Clone, Copy)]
struct SentHeaders {
    xff: bool,
    xfp: bool,
    request_id: bool,
    /// Any `x-envoy-*` header.
    envoy: bool,
    /// `x-forwarded-client-cert`.
    xfcc: bool,
}

/// Applies Envoy's connection-manager request header changes.
pub fn mutate_request(
    headers: &mut HeaderMap,
    conn: &ConnInfo,
    hcm: &HttpConnectionManager,
) -> ClientFacts {
    let scheme = if conn.tls { "https" } else { "http" };
    // One pass over the names: most requests carry no forwarding or `x-envoy-*` header,
    // and each lookup or removal below hashes a name.
    let mut sent = SentHeaders::default();
    for name in headers.keys() {
        // Every name looked for starts with `x-` (names are lowercase): most names are
        // ruled out by their first bytes.
        if !name.as_str().starts_with("x-") {
            continue;
        }
        if name == X_FORWARDED_FOR {
            sent.xff = true;
        } else if name == X_FORWARDED_PROTO {
            sent.xfp = true;
        } else if name == X_REQUEST_ID {
            sent.request_id = true;
        } else if name == X_FORWARDED_CLIENT_CERT {
            sent.xfcc = true;
        } else if name.as_str().starts_with("x-envoy-") {
            sent.envoy = true;
        }
    }
    let (remote, single_xff) = if hcm.use_remote_address {
        // With trusted proxies in front (xff_num_trusted_hops = N), the client is the
        // Nth address from the right of the XFF they sent; the peer otherwise, or when
        // they did not fill XFF in properly.
        let trusted_client = match hcm.xff_num_trusted_hops as usize {
            0 => None,
            hops => {
                let entries = if sent.xff {
                    xff_entries(headers)
                } else {
                    Vec::new()
                };
                entries
                    .len()
                    .checked_sub(hops)
                    .and_then(|i| entries[i].parse::<IpAddr>().ok())
                    .map(|ip| SocketAddr::new(ip, 0))
            }
        };
        if !hcm.skip_xff_append {
            // A client on a loopback address is this machine: Envoy appends the machine's
            // own (non-loopback) address instead, as the hop the next proxy sees.
            let peer = if conn.remote.ip().is_loopback() {
                local_address().to_string()
            } else {
                conn.remote.ip().to_string()
            };
            let existing = sent.xff.then(|| headers.get(&X_FORWARDED_FOR)).flatten();
            let value = match existing.and_then(|v| v.to_str().ok()) {
                Some(existing) if !existing.is_empty() => format!("{existing},{peer}"),
                _ => peer,
            };
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(X_FORWARDED_FOR.clone(), v);
            }
        }
        (trusted_client.unwrap_or(conn.remote), false)
    } else {
        let entries = if sent.xff {
            xff_entries(headers)
        } else {
            Vec::new()
        };
        let hops = hcm.xff_num_trusted_hops as usize;
        let from_xff = entries
            .len()
            .checked_sub(1 + hops)
            .and_then(|i| entries[i].parse::<IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, 0));
        (from_xff.unwrap_or(conn.remote), entries.len() == 1)
    };
    if hcm.use_remote_address || !sent.xfp {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(scheme));
    }
    // A value the client (or a proxy in front) sent is kept, as Envoy does.
    if hcm.append_x_forwarded_port && !headers.contains_key(&X_FORWARDED_PORT) {
        headers.insert(
            X_FORWARDED_PORT.clone(),
            HeaderValue::from(conn.local.port()),
        );
    }
    // Without `x-envoy-*` headers the lookups of every header the edge or the router
    // strips are spared.
    let has_envoy_headers = sent.envoy;
    let internal =
        (hcm.use_remote_address || single_xff) && in_cidrs(remote.ip(), &hcm.internal_cidrs);
    let edge = !internal && hcm.use_remote_address;
    if edge {
        if has_envoy_headers {
            for name in EDGE_STRIPPED {
                headers.remove(*name);
            }
        }
        for name in &hcm.route_config.internal_only_headers {
            headers.remove(name);
            if *name == X_REQUEST_ID {
                sent.request_id = false;
            }
        }
        if let Ok(v) = HeaderValue::from_str(&remote.ip().to_string()) {
            headers.insert(X_ENVOY_EXTERNAL_ADDRESS.clone(), v);
        }
    }
    if internal {
        headers.insert(X_ENVOY_INTERNAL.clone(), HeaderValue::from_static("true"));
    } else if has_envoy_headers {
        headers.remove(&X_ENVOY_INTERNAL);
        // Envoy 1.40 honours (and forwards) it from internal callers only.
        headers.remove("x-envoy-force-trace");
    }
    if has_envoy_headers {
        for name in ROUTER_CONSUMED {
            headers.remove(*name);
        }
    }
    if hcm.generate_request_id {
        let regenerate = !sent.request_id || (edge && !hcm.preserve_external_request_id);
        if regenerate {
            headers.insert(X_REQUEST_ID.clone(), request_id_value());
        } else if edge {
            crate::http::trace_decision::clear_external_reason(headers, hcm.request_id);
        }
    }
    if let Some(via) = &hcm.via {
        append_via(headers, via);
    }
    super::xfcc::mutate(headers, conn, hcm, sent.xfcc);
    ClientFacts {
        remote,
        internal,
        edge,
    }
}

/// Appends `via` to an existing `via` list (Envoy joins with `, `).
pub fn append_via(headers: &mut HeaderMap, via: &HeaderValue) {
    let value = match headers.get(&VIA).and_then(|v| v.to_str().ok()) {
        Some(existing) if !existing.is_empty() => {
            HeaderValue::from_str(&format!("{existing}, {}", via.to_str().unwrap_or("")))
                .unwrap_or_else(|_| via.clone())
        }
        _ => via.clone(),
    };
    headers.insert(VIA.clone(), value);
}

/// Response headers every response gets: `server` (per `server_header_transformation`),
/// `via`, and `date` when missing.
pub fn finish_response(headers: &mut HeaderMap, hcm: &HttpConnectionManager) {
    // `date` before `server`, as Envoy writes them (an upstream's own `date`, and a
    // `server` it sent that is overwritten, keep their places).
    //
    // One pass over the few headers of a response instead of a lookup for `date` and
    // an insert for `server` (each hashes the name): a single `server` value is
    // overwritten where it is; several go through `insert`, which keeps the first's
    // place and drops the rest.
    let overwrite = hcm.server_header_transformation == ServerHeaderTransformation::Overwrite;
    let mut has_date = false;
    let mut servers = 0usize;
    for (name, value) in headers.iter_mut() {
        if *name == http::header::DATE {
            has_date = true;
        } else if *name == http::header::SERVER {
            servers += 1;
            if overwrite && servers == 1 {
                *value = hcm.server_name.clone();
            }
        }
    }
    if !has_date {
        headers.insert(http::header::DATE, super::date::now());
    }
    let set_server = match hcm.server_header_transformation {
        ServerHeaderTransformation::Overwrite => servers != 1,
        ServerHeaderTransformation::AppendIfAbsent => servers == 0,
        ServerHeaderTransformation::PassThrough => false,
    };
    if set_server {
        headers.insert(http::header::SERVER, hcm.server_name.clone());
    }
    if let Some(via) = &hcm.via {
        append_via(headers, via);
    }
}

/// Envoy's host rewrite: the new value replaces `host`; the old one is kept in
/// `x-envoy-original-host` (unless `suppress_envoy_headers`) and, with
/// `append_x_forwarded_host`, appended to `x-forwarded-host` (joined with `,`).
pub fn rewrite_host(
    headers: &mut http::HeaderMap,
    new_host: HeaderValue,
    keep_original: bool,
    append_xfh: bool,
) {
    let Some(old) = headers.insert(http::header::HOST, new_host) else {
        return;
    };
    if append_xfh {
        let joined = match headers.get(&X_FORWARDED_HOST) {
            Some(existing) if !existing.is_empty() => {
                let mut v = existing.as_bytes().to_vec();
                v.push(b',');
                v.extend_from_slice(old.as_bytes());
                HeaderValue::from_bytes(&v).ok()
            }
            _ => Some(old.clone()),
        };
        if let Some(v) = joined {
            headers.insert(X_FORWARDED_HOST.clone(), v);
        }
    }
    if keep_original {
        headers.insert(X_ENVOY_ORIGINAL_HOST.clone(), old);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_shape() {
        let bytes = format_uuid_v4([0xff; 16]);
        let u = std::str::from_utf8(&bytes).expect("ascii");
        assert_eq!(u, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(u.matches('-').count(), 4);
        assert_eq!([&u[8..9], &u[13..14], &u[18..19], &u[23..24]], ["-"; 4]);
        assert!(u.bytes().all(|c| c == b'-' || c.is_ascii_hexdigit()));
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn request_ids_are_uuids_and_differ_across_blocks() {
        let ids: std::collections::HashSet<Vec<u8>> = (0..600)
            .map(|_| request_id_value().as_bytes().to_vec())
            .collect();
        assert_eq!(ids.len(), 600);
        for id in &ids {
            let u = std::str::from_utf8(id).expect("ascii");
            assert_eq!(u.len(), 36);
            assert_eq!([&u[8..9], &u[13..14], &u[18..19], &u[23..24]], ["-"; 4]);
            assert_eq!(&u[14..15], "4");
            assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
            assert!(u.bytes().all(|c| c == b'-' || c.is_ascii_hexdigit()));
        }
    }

    fn hcm(transformation: ServerHeaderTransformation) -> HttpConnectionManager {
        let yaml = r#"
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: s
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
          route_config: { virtual_hosts: [ { name: v, domains: ["*"], routes: [ { match: { prefix: "/" }, direct_response: { status: 200 } } ] } ] }
"#;
        let bootstrap = baton_config::load_yaml_str(yaml).expect("config");
        let baton_config::model::NetworkFilter::Http(h) =
            &bootstrap.model.listeners[0].filter_chains[0].network
        else {
            panic!("not an HCM");
        };
        let mut h = (**h).clone();
        h.server_header_transformation = transformation;
        h
    }

    /// `finish_response` as it was written with lookups: the reference for the pass.
    fn finish_by_lookups(headers: &mut HeaderMap, hcm: &HttpConnectionManager) {
        if !headers.contains_key(http::header::DATE) {
            headers.insert(http::header::DATE, HeaderValue::from_static("now"));
        }
        match hcm.server_header_transformation {
            ServerHeaderTransformation::Overwrite => {
                headers.insert(http::header::SERVER, hcm.server_name.clone());
            }
            ServerHeaderTransformation::AppendIfAbsent => {
                if !headers.contains_key(http::header::SERVER) {
                    headers.insert(http::header::SERVER, hcm.server_name.clone());
                }
            }
            ServerHeaderTransformation::PassThrough => {}
        }
    }

    #[test]
    fn finish_response_sets_date_and_server_as_lookups_would_in_the_same_order() {
        let heads: &[&[(&str, &str)]] = &[
            &[],
            &[("server", "nginx"), ("date", "d"), ("content-length", "1")],
            &[
                ("date", "d"),
                ("a", "1"),
                ("server", "s1"),
                ("b", "2"),
                ("server", "s2"),
            ],
            &[("a", "1"), ("server", "s1")],
            &[("a", "1"), ("date", "d"), ("date", "e")],
            &[("a", "1"), ("b", "2")],
        ];
        for transformation in [
            ServerHeaderTransformation::Overwrite,
            ServerHeaderTransformation::AppendIfAbsent,
            ServerHeaderTransformation::PassThrough,
        ] {
            let hcm = hcm(transformation);
            for head in heads {
                let mut map = HeaderMap::new();
                for (n, v) in *head {
                    map.append(HeaderName::from_static(n), HeaderValue::from_static(v));
                }
                let mut expected = map.clone();
                finish_by_lookups(&mut expected, &hcm);
                finish_response(&mut map, &hcm);
                // The date is the clock's: compare where it is, not what it says.
                let text = |m: &HeaderMap| -> Vec<(String, String)> {
                    m.iter()
                        .map(|(n, v)| {
                            let v = if v == "now"
                                || (n == "date" && !head.iter().any(|(hn, _)| *hn == "date"))
                            {
                                "now".to_string()
                            } else {
                                String::from_utf8_lossy(v.as_bytes()).into_owned()
                            };
                            (n.to_string(), v)
                        })
                        .collect()
                };
                assert_eq!(text(&map), text(&expected), "{transformation:?} {head:?}");
            }
        }
    }

    #[test]
    fn cidr_membership() {
        let c = [CidrRange {
            addr: "10.0.0.0".parse().expect("ip"),
            len: 8,
        }];
        assert!(in_cidrs("10.9.9.9".parse().expect("ip"), &c));
        assert!(!in_cidrs("11.0.0.1".parse().expect("ip"), &c));
        assert!(!in_cidrs("::1".parse().expect("ip"), &c));
    }
}
