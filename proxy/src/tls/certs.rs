//! `/certs` and `server.days_until_first_cert_expiring`: the TLS contexts this
//! generation serves and connects with (registered as their server configs and
//! clusters are built, held weakly so a replaced listener's or cluster's context drops
//! out), described in Envoy's JSON shape; and each context's
//! `<scope>.ssl.certificate.<name>.expiration_unix_time_seconds` gauges, set when it is
//! registered and again whenever SDS swaps a secret (see [`refresh_expiration_gauges`]).

use std::sync::{Arc, Mutex, Weak};

use baton_config::model::{
    DownstreamTlsContext, TlsCertificate, UpstreamTlsContext, ValidationContext,
};
use rustls::pki_types::CertificateDer;

use super::sds::CertEntry;
use super::stats::SslStats;
use serde_json::{json, Value};

/// What a context uses now, where SDS rotates it: its certificates (in the resolver's
/// order) and its validation context (None: the configured one).
pub struct Current {
    /// The certificates served now.
    pub certificates: Vec<Arc<CertEntry>>,
    /// The validation context verified against now.
    pub validation: Option<Arc<ValidationContext>>,
    /// The SDS secret each of `certificates` came from (None: configured inline or by
    /// file), for its expiration gauge's name; empty: named from the context.
    pub secret_names: Vec<Option<String>>,
}

/// The gauge name of a certificate configured in the context itself, as Envoy 1.40
/// names it (the same for every such certificate, inline or from a file).
const UNNAMED_CERT: &str = "unnamed_cert_e3b0c442";
/// The same for a trusted CA configured in the context itself.
const UNNAMED_CA_CERT: &str = "unnamed_ca_cert_e3b0c442";

/// Reads a context's [`Current`] state (None once its chain is gone).
pub type CurrentFn = Box<dyn Fn() -> Option<Current> + Send + Sync>;

/// A registered context: a filter chain's or a cluster's.
enum Registered {
    Downstream(
        Weak<DownstreamTlsContext>,
        Option<Arc<CurrentFn>>,
        Arc<SslStats>,
    ),
    Upstream(
        Weak<UpstreamTlsContext>,
        Option<Arc<CurrentFn>>,
        Arc<SslStats>,
    ),
}

impl Registered {
    fn is_live(&self) -> bool {
        match self {
            Self::Downstream(w, ..) => w.strong_count() > 0,
            Self::Upstream(w, ..) => w.strong_count() > 0,
        }
    }

    fn points_to(&self, ptr: *const ()) -> bool {
        match self {
            Self::Downstream(w, ..) => std::ptr::eq(w.as_ptr().cast(), ptr),
            Self::Upstream(w, ..) => std::ptr::eq(w.as_ptr().cast(), ptr),
        }
    }
}

/// What `/certs` shows of a live context.
enum Live {
    Downstream(
        Arc<DownstreamTlsContext>,
        Option<Arc<CurrentFn>>,
        Arc<SslStats>,
    ),
    Upstream(
        Arc<UpstreamTlsContext>,
        Option<Arc<CurrentFn>>,
        Arc<SslStats>,
    ),
}

impl Live {
    fn parts(&self) -> (Option<&ValidationContext>, &[TlsCertificate]) {
        match self {
            Self::Downstream(c, ..) => (c.validation.as_deref(), &c.certificates),
            Self::Upstream(c, ..) => (c.validation.as_deref(), &c.certificates),
        }
    }

    fn current(&self) -> Option<Current> {
        match self {
            Self::Downstream(_, Some(current), _) | Self::Upstream(_, Some(current), _) => {
                current()
            }
            _ => None,
        }
    }

    fn stats(&self) -> &SslStats {
        match self {
            Self::Downstream(.., stats) | Self::Upstream(.., stats) => stats,
        }
    }

    /// The SDS secrets its validation context comes from (file or control plane).
    fn validation_secret(&self) -> Option<&str> {
        let (file, xds) = match self {
            Self::Downstream(c, ..) => (&c.sds_validation, &c.xds_validation),
            Self::Upstream(c, ..) => (&c.sds_validation, &c.xds_validation),
        };
        file.as_ref()
            .map(|s| s.secret_name.as_str())
            .or(xds.as_ref().map(|s| s.secret_name.as_str()))
    }

    /// Each certificate's gauge name and `notAfter`, then the trusted CA's (the first
    /// of the bundle, as `/certs` shows it): what the context uses now.
    fn expirations(&self) -> Vec<(String, i64)> {
        let (configured_validation, configured) = self.parts();
        let current = self.current();
        let mut out = Vec::new();
        match &current {
            Some(now) => {
                let upstream_secret = match self {
                    Self::Upstream(c, ..) => c
                        .sds_certificate
                        .as_ref()
                        .map(|s| s.secret_name.clone())
                        .or(c.xds_certificate.as_ref().map(|s| s.secret_name.clone())),
                    Self::Downstream(..) => None,
                };
                for (i, entry) in now.certificates.iter().enumerate() {
                    let secret = match now.secret_names.get(i) {
                        Some(name) => name.clone(),
                        None => upstream_secret
                            .clone()
                            .or_else(|| configured.get(i).and_then(|c| c.static_secret.clone())),
                    };
                    let name = secret.unwrap_or_else(|| UNNAMED_CERT.to_string());
                    if let Some(t) = entry.key.cert.first().and_then(not_after) {
                        out.push((name, t));
                    }
                }
            }
            None => {
                for cert in configured {
                    if let Some(t) = cert.certified_key.cert.first().and_then(not_after) {
                        let name = cert.static_secret.as_deref().unwrap_or(UNNAMED_CERT);
                        out.push((name.to_string(), t));
                    }
                }
            }
        }
        let current_validation = current.and_then(|c| c.validation);
        let validation = current_validation.as_deref().or(configured_validation);
        if let Some(t) = validation
            .and_then(|v| v.trusted_ca.first())
            .and_then(not_after)
        {
            let name = self
                .validation_secret()
                .or(validation.and_then(|v| v.static_secret.as_deref()))
                .unwrap_or(UNNAMED_CA_CERT);
            out.push((name.to_string(), t));
        }
        out
    }
}

/// A certificate's `notAfter` in Unix seconds.
fn not_after(der: &CertificateDer<'_>) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// Sets every live context's `ssl.certificate.<name>.expiration_unix_time_seconds`
/// from what it serves and trusts now. Contexts sharing a scope (a listener's filter
/// chains) write the same gauge; the one registered last wins, as Envoy's last-built
/// context does. Called after each SDS swap (a registration sets only its own).
pub fn refresh_expiration_gauges() {
    for ctx in live_contexts() {
        set_expiration_gauges(&ctx);
    }
}

/// Shows a refused certificate's expiry in the gauges of every live context that serves
/// the secret `secret_name`, as Envoy 1.40 does after a NACK or a refused secret file
/// (its context takes the secret in before refusing it); the last good certificate keeps
/// serving and `/certs` shows that one. The next accepted rotation sets them again.
pub fn show_refused_expiration(secret_name: &str, not_after: i64) {
    for ctx in live_contexts() {
        if ctx
            .expirations()
            .iter()
            .any(|(name, _)| name == secret_name)
        {
            ctx.stats()
                .set_expiration(secret_name, u64::try_from(not_after).unwrap_or(0));
        }
    }
}

fn set_expiration_gauges(ctx: &Live) {
    for (name, t) in ctx.expirations() {
        ctx.stats()
            .set_expiration(&name, u64::try_from(t).unwrap_or(0));
    }
}

static CONTEXTS: Mutex<Vec<Registered>> = Mutex::new(Vec::new());

fn add(ptr: *const (), entry: impl FnOnce() -> Registered) {
    let mut contexts = CONTEXTS.lock().unwrap_or_else(|e| e.into_inner());
    contexts.retain(Registered::is_live);
    if !contexts.iter().any(|r| r.points_to(ptr)) {
        contexts.push(entry());
    }
}

/// Notes a context in use (called when its server config is built); `current` reads
/// what SDS rotated in, so `/certs` shows the certificates served now.
pub fn register(
    ctx: &Arc<DownstreamTlsContext>,
    current: Option<CurrentFn>,
    stats: &Arc<SslStats>,
) {
    let current = current.map(Arc::new);
    add(Arc::as_ptr(ctx).cast(), || {
        Registered::Downstream(Arc::downgrade(ctx), current.clone(), stats.clone())
    });
    // This context's gauges only: a config of many TLS chains registers each once.
    set_expiration_gauges(&Live::Downstream(ctx.clone(), current, stats.clone()));
}

/// Notes a cluster's context in use (called when the cluster is built); `current`
/// reads what SDS rotated in (client certificate, validation context), as for
/// listeners.
pub fn register_upstream(
    ctx: &Arc<UpstreamTlsContext>,
    current: Option<CurrentFn>,
    stats: &Arc<SslStats>,
) {
    let current = current.map(Arc::new);
    add(Arc::as_ptr(ctx).cast(), || {
        Registered::Upstream(Arc::downgrade(ctx), current.clone(), stats.clone())
    });
    set_expiration_gauges(&Live::Upstream(ctx.clone(), current, stats.clone()));
}

fn live_contexts() -> Vec<Live> {
    let contexts = CONTEXTS.lock().unwrap_or_else(|e| e.into_inner());
    contexts
        .iter()
        .filter_map(|r| match r {
            Registered::Downstream(w, current, stats) => w
                .upgrade()
                .map(|c| Live::Downstream(c, current.clone(), stats.clone())),
            Registered::Upstream(w, current, stats) => w
                .upgrade()
                .map(|c| Live::Upstream(c, current.clone(), stats.clone())),
        })
        .collect()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Whole days from `now` to `not_after`, 0 once expired (as Envoy).
fn days_until(not_after: i64, now: i64) -> u64 {
    u64::try_from((not_after - now) / 86_400).unwrap_or(0)
}

fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// One certificate's `CertificateDetails`.
fn details(der: &CertificateDer<'_>, path: &str, now: i64) -> Option<(Value, u64)> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    // The serial as BoringSSL prints it: bytes in hex without the DER sign byte.
    let raw = cert.tbs_certificate.raw_serial();
    let first = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    let serial: String = raw[first..].iter().map(|b| format!("{b:02x}")).collect();
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(d) => sans.push(json!({ "dns": d })),
                GeneralName::URI(u) => sans.push(json!({ "uri": u })),
                GeneralName::IPAddress(ip) => {
                    let addr = match ip.len() {
                        4 => <[u8; 4]>::try_from(*ip)
                            .ok()
                            .map(|a| std::net::IpAddr::from(a).to_string()),
                        16 => <[u8; 16]>::try_from(*ip)
                            .ok()
                            .map(|a| std::net::IpAddr::from(a).to_string()),
                        _ => None,
                    };
                    if let Some(addr) = addr {
                        sans.push(json!({ "ip_address": addr }));
                    }
                }
                _ => {}
            }
        }
    }
    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    let days = days_until(not_after, now);
    Some((
        json!({
            "path": path,
            "serial_number": serial,
            "subject_alt_names": sans,
            // uint64 in Envoy's proto: a string in JSON.
            "days_until_expiration": days.to_string(),
            "valid_from": rfc3339(not_before),
            "expiration_time": rfc3339(not_after),
        }),
        days,
    ))
}

/// One context's `{ca_cert, cert_chain}` and its fewest days until an expiry.
fn context_json(ctx: &Live, now: i64) -> (Value, Option<u64>) {
    let (configured_validation, certificates) = ctx.parts();
    let current = ctx.current();
    let current_validation = current.as_ref().and_then(|c| c.validation.clone());
    let validation = current_validation.as_deref().or(configured_validation);
    let mut min: Option<u64> = None;
    let mut note = |d: u64| min = Some(min.map_or(d, |m| m.min(d)));
    let ca: Vec<Value> = validation
        .iter()
        .filter_map(|v| {
            let first = v.trusted_ca.first()?;
            let (j, d) = details(first, &v.trusted_ca_source, now)?;
            note(d);
            Some(j)
        })
        .collect();
    // A certificate SDS rotated in is shown from what is served (no staple details);
    // one still as configured, from its configuration.
    let served: Option<Vec<Arc<CertEntry>>> = current.map(|c| c.certificates);
    let is_configured = |e: &&Arc<CertEntry>| {
        certificates
            .iter()
            .any(|c| Arc::ptr_eq(&c.certified_key, &e.key))
    };
    let still_served = |c: &&TlsCertificate| {
        served
            .as_ref()
            .is_none_or(|s| s.iter().any(|e| Arc::ptr_eq(&e.key, &c.certified_key)))
    };
    let mut chain: Vec<Value> = certificates
        .iter()
        .filter(still_served)
        .filter_map(|c| {
            let leaf = c.certified_key.cert.first()?;
            let (mut j, d) = details(leaf, &c.chain_source, now)?;
            note(d);
            if let Some(this_update) = c.ocsp_this_update {
                let mut ocsp = json!({ "valid_from": rfc3339(to_i64(this_update)) });
                if let Some(next_update) = c.ocsp_next_update {
                    ocsp["expiration"] = json!(rfc3339(to_i64(next_update)));
                }
                j["ocsp_details"] = ocsp;
            }
            Some(j)
        })
        .collect();
    let rotated = served.iter().flatten().filter(|e| !is_configured(e));
    for entry in rotated {
        if let Some((j, d)) = entry
            .key
            .cert
            .first()
            .and_then(|leaf| details(leaf, &entry.source, now))
        {
            note(d);
            chain.push(j);
        }
    }
    (json!({ "ca_cert": ca, "cert_chain": chain }), min)
}

/// The `/certs` body.
pub fn certs_json() -> Value {
    let now = unix_now();
    let certificates: Vec<Value> = live_contexts()
        .iter()
        .map(|c| context_json(c, now).0)
        .collect();
    json!({ "certificates": certificates })
}

fn to_i64(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// `server.seconds_until_first_ocsp_response_expiring`: the fewest seconds until a
/// served staple's `nextUpdate` (0 once past it, and without any staple, as Envoy).
pub fn seconds_until_first_ocsp_response_expiring() -> u64 {
    let now = unix_now();
    live_contexts()
        .iter()
        .flat_map(|c| c.parts().1.iter().filter_map(|cert| cert.ocsp_next_update))
        .map(|next_update| u64::try_from(to_i64(next_update) - now).unwrap_or(0))
        .min()
        .unwrap_or(0)
}

/// `server.days_until_first_cert_expiring`: the fewest days until any served or trusted
/// certificate expires; `u32::MAX` without any (as Envoy).
pub fn days_until_first_cert_expiring() -> u64 {
    let now = unix_now();
    live_contexts()
        .iter()
        .filter_map(|c| context_json(c, now).1)
        .min()
        .unwrap_or(u64::from(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::days_until;

    #[test]
    fn whole_days_and_zero_once_expired() {
        assert_eq!(days_until(30 * 86_400 - 5, 0), 29);
        assert_eq!(days_until(86_400, 0), 1);
        assert_eq!(days_until(0, 100), 0);
    }
}
