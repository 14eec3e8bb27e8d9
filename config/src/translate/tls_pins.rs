//! Certificate pins of a `CertificateValidationContext`: `verify_certificate_hash`
//! (hex SHA-256 of the DER certificate, plain or as the 95-character colon-separated
//! fingerprint `openssl x509 -fingerprint -sha256` prints) and `verify_certificate_spki`
//! (base64 SHA-256 of the DER SubjectPublicKeyInfo), read as Envoy reads them, with
//! Envoy's wording for a malformed value.

use crate::error::{ConfigError, Result};

/// `verify_certificate_hash` entries, decoded.
pub(crate) fn cert_hashes(values: &[String], vpath: &str) -> Result<Vec<[u8; 32]>> {
    values
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let path = format!("{vpath}.verify_certificate_hash[{i}]");
            check_length(value, 64, 95, &path)?;
            // Only the fingerprint form (exactly 95 characters) has its colons dropped,
            // as Envoy: a colon anywhere else makes the value invalid.
            let hex: String = if value.len() == 95 {
                value.chars().filter(|c| *c != ':').collect()
            } else {
                value.clone()
            };
            decode_hex(&hex)
                .ok_or_else(|| ConfigError::at(path, format!("Invalid hex-encoded SHA-256 {hex}")))
        })
        .collect()
}

/// `verify_certificate_spki` entries, decoded.
pub(crate) fn spki_hashes(values: &[String], vpath: &str) -> Result<Vec<[u8; 32]>> {
    values
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let path = format!("{vpath}.verify_certificate_spki[{i}]");
            check_length(value, 44, 44, &path)?;
            decode_base64(value).ok_or_else(|| {
                ConfigError::at(path, format!("Invalid base64-encoded SHA-256 {value}"))
            })
        })
        .collect()
}

/// The proto's length rules (`min_len` in characters, `max_bytes`), worded as Envoy's
/// validation reports them.
fn check_length(value: &str, min_chars: usize, max_bytes: usize, path: &str) -> Result<()> {
    if value.chars().count() < min_chars {
        return Err(ConfigError::at(
            path,
            format!("value length must be at least {min_chars} characters"),
        ));
    }
    if value.len() > max_bytes {
        return Err(ConfigError::at(
            path,
            format!("value length must be at most {max_bytes} bytes"),
        ));
    }
    Ok(())
}

/// 64 hex digits (either case) as 32 bytes.
fn decode_hex(hex: &str) -> Option<[u8; 32]> {
    let digit = |b: u8| -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    };
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}

/// Standard padded base64 of exactly 32 bytes (43 digits and one `=`).
fn decode_base64(text: &str) -> Option<[u8; 32]> {
    let value = |b: u8| -> Option<u32> {
        Some(u32::from(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    let digits = text.as_bytes().strip_suffix(b"=")?;
    if digits.len() != 43 {
        return None;
    }
    let mut out = Vec::with_capacity(33);
    for group in digits.chunks(4) {
        let mut acc = 0u32;
        for &b in group {
            acc = (acc << 6) | value(b)?;
        }
        // The last group has 3 digits: 18 bits, of which 16 are data.
        let bits = group.len() * 6;
        let full = bits / 8;
        let acc = acc << (24 - bits);
        out.extend_from_slice(&acc.to_be_bytes()[1..1 + full]);
        if full < 3 && acc.to_be_bytes()[1 + full..].iter().any(|b| *b != 0) {
            // Non-zero bits past the data: not a canonical encoding.
            return None;
        }
    }
    <[u8; 32]>::try_from(out.as_slice()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "EA5128B01164F2F4CFE1DAE00C60F809C18254D40988ED7ED664E296A9B8A726";

    #[test]
    fn hash_plain_lowercase_and_fingerprint_forms() {
        let plain = cert_hashes(&[HEX.to_string()], "v").unwrap();
        let lower = cert_hashes(&[HEX.to_ascii_lowercase()], "v").unwrap();
        let fingerprint: Vec<String> = HEX
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        let colons = cert_hashes(&[fingerprint.join(":")], "v").unwrap();
        assert_eq!(plain, lower);
        assert_eq!(plain, colons);
        assert_eq!(plain[0][0], 0xEA);
        assert_eq!(plain[0][31], 0x26);
    }

    #[test]
    fn hash_errors_as_envoy() {
        let err = |v: &str| cert_hashes(&[v.to_string()], "v").unwrap_err().to_string();
        assert!(err("zz").contains("value length must be at least 64 characters"));
        let colon_inside = format!("{}:{}", &HEX[..62], &HEX[62..]);
        assert!(err(&colon_inside).contains(&format!("Invalid hex-encoded SHA-256 {colon_inside}")));
        assert!(err(&format!("{HEX}AA")).contains("Invalid hex-encoded SHA-256"));
        assert!(err(&"z".repeat(64)).contains("Invalid hex-encoded SHA-256"));
        assert!(err(&"A".repeat(96)).contains("value length must be at most 95 bytes"));
    }

    #[test]
    fn spki_base64() {
        let got = spki_hashes(
            &["dpw+Pfz4xxKZxoza6OD/jKXDarcVDOLWoeQMvZCjN6Y=".to_string()],
            "v",
        )
        .unwrap();
        assert_eq!(got[0][0], 0x76);
        assert_eq!(got[0][31], 0xa6);
        let err = |v: &str| spki_hashes(&[v.to_string()], "v").unwrap_err().to_string();
        assert!(err("YWJj").contains("value length must be at least 44 characters"));
        assert!(err(&"!".repeat(44)).contains("Invalid base64-encoded SHA-256"));
        assert!(err(&"A".repeat(44)).contains("Invalid base64-encoded SHA-256"));
        assert!(err(&"A".repeat(48)).contains("value length must be at most 44 bytes"));
    }
}
