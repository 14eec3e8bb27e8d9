//! Values of the downstream TLS operators (`%DOWNSTREAM_TLS_CIPHER%`,
//! `%DOWNSTREAM_PEER_*%`, `%DOWNSTREAM_LOCAL_*%`) from the connection's session facts and
//! the client's certificate, as Envoy 1.40 renders them. What is not kept per connection
//! (issuer, serial, validity, SHA-1) is read from the certificate when a line asks.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use baton_config::model::DownstreamTlsField;

use super::format::{format_time, Value};
use super::stream_info::StreamInfo;
use crate::tls::CertDetails;

/// The value of `field` for the connection of `info` (`-` without TLS, or without a
/// client certificate for the peer's).
pub(super) fn value<'a>(field: &DownstreamTlsField, info: &'a StreamInfo) -> Value<'a> {
    let Some(tls) = info.conn.tls_info.as_deref() else {
        return Value::Missing;
    };
    let peer = tls.peer.as_ref();
    let leaf = tls.peer_chain.first();
    let joined = |names: Option<&'a Vec<String>>| match names {
        Some(names) if !names.is_empty() => Value::Str(Cow::Owned(names.join(","))),
        _ => Value::Missing,
    };
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let time = |seconds: i64, pattern: &Option<String>| {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
        Value::Str(Cow::Owned(format_time(at, pattern.as_deref())))
    };
    let details = || leaf.and_then(|der| CertDetails::parse(der));
    match field {
        DownstreamTlsField::Cipher => tls
            .cipher
            .map_or(Value::Missing, |c| Value::Str(Cow::Borrowed(c))),
        DownstreamTlsField::PeerUriSan => joined(peer.map(|p| &p.uri_sans)),
        DownstreamTlsField::PeerDnsSan => joined(peer.map(|p| &p.dns_sans)),
        DownstreamTlsField::PeerIpSan => joined(peer.map(|p| &p.ip_sans)),
        DownstreamTlsField::PeerEmailSan => joined(peer.map(|p| &p.email_sans)),
        DownstreamTlsField::PeerFingerprint256 => peer.map_or(Value::Missing, |p| {
            Value::Str(Cow::Borrowed(p.sha256.as_str()))
        }),
        DownstreamTlsField::PeerFingerprint1 => leaf.map_or(Value::Missing, |der| {
            let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
            Value::Str(Cow::Owned(hex(digest.as_ref())))
        }),
        DownstreamTlsField::PeerCert => leaf.map_or(Value::Missing, |der| {
            let pem = crate::http::headers::xfcc::pem(der);
            Value::Str(Cow::Owned(crate::http::headers::xfcc::url_encode(&pem)))
        }),
        DownstreamTlsField::PeerIssuer => {
            details().map_or(Value::Missing, |d| Value::Str(Cow::Owned(d.issuer)))
        }
        DownstreamTlsField::PeerSerial => {
            details().map_or(Value::Missing, |d| Value::Str(Cow::Owned(d.serial)))
        }
        DownstreamTlsField::PeerValidFrom(pattern) => {
            details().map_or(Value::Missing, |d| time(d.not_before, pattern))
        }
        DownstreamTlsField::PeerValidUntil(pattern) => {
            details().map_or(Value::Missing, |d| time(d.not_after, pattern))
        }
        DownstreamTlsField::LocalSubject => tls
            .local_subject
            .as_deref()
            .map_or(Value::Missing, |s| Value::Str(Cow::Borrowed(s))),
        DownstreamTlsField::LocalUriSan => tls
            .local_uri_san
            .as_deref()
            .map_or(Value::Missing, |s| Value::Str(Cow::Borrowed(s))),
        DownstreamTlsField::LocalDnsSan => tls
            .local_dns_san
            .as_deref()
            .map_or(Value::Missing, |s| Value::Str(Cow::Borrowed(s))),
    }
}
