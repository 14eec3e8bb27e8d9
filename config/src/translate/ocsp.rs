//! `ocsp_staple`: the DER OCSP response stapled to a certificate. Read far enough to check
//! what Envoy checks at load (a successful response, for exactly one certificate, whose
//! serial number is the certificate's) and to know when it expires (`nextUpdate`).
//!
//! A small DER reader walks the structure (RFC 6960); signatures are the client's to
//! check, as with Envoy.

/// What Baton needs from an OCSP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OcspSummary {
    /// `certID.serialNumber`, big-endian, leading zeros dropped.
    pub serial: Vec<u8>,
    /// `thisUpdate` as Unix seconds.
    pub this_update: u64,
    /// `nextUpdate` as Unix seconds (`None`: the response never expires).
    pub next_update: Option<u64>,
}

/// Why an OCSP response is refused, in Envoy's words where it has them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OcspError {
    #[error("OCSP response could not be parsed: {0}")]
    Malformed(&'static str),
    #[error("OCSP response was unsuccessful")]
    Unsuccessful,
    #[error("OCSP response has no body")]
    NoBody,
    #[error("OCSP Response must be for one certificate only")]
    NotOneCertificate,
}

/// One DER element: its tag and content, and what follows it.
fn element(input: &[u8]) -> Result<(u8, &[u8], &[u8]), OcspError> {
    let malformed = || OcspError::Malformed("truncated element");
    let (&tag, rest) = input.split_first().ok_or_else(malformed)?;
    let (&first, rest) = rest.split_first().ok_or_else(malformed)?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let count = (first & 0x7f) as usize;
        if count == 0 || count > 4 || rest.len() < count {
            return Err(OcspError::Malformed("bad length"));
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[count..])
    };
    if rest.len() < len {
        return Err(malformed());
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// The content of the element at the start of `input`, which must have `tag`.
fn expect<'a>(
    input: &'a [u8],
    tag: u8,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), OcspError> {
    let (t, content, rest) = element(input)?;
    if t != tag {
        return Err(OcspError::Malformed(what));
    }
    Ok((content, rest))
}

const SEQUENCE: u8 = 0x30;
const ENUMERATED: u8 = 0x0a;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const INTEGER: u8 = 0x02;
const GENERALIZED_TIME: u8 = 0x18;
const CONTEXT_0: u8 = 0xa0;

/// Reads an `OCSPResponse`.
pub(crate) fn parse(der: &[u8]) -> Result<OcspSummary, OcspError> {
    let (response, _) = expect(der, SEQUENCE, "OCSPResponse")?;
    let (status, rest) = expect(response, ENUMERATED, "responseStatus")?;
    if status != [0] {
        return Err(OcspError::Unsuccessful);
    }
    if rest.is_empty() {
        return Err(OcspError::NoBody);
    }
    let (bytes, _) = expect(rest, CONTEXT_0, "responseBytes")?;
    let (bytes, _) = expect(bytes, SEQUENCE, "ResponseBytes")?;
    let (_, rest) = expect(bytes, OID, "responseType")?;
    let (basic, _) = expect(rest, OCTET_STRING, "response")?;
    let (basic, _) = expect(basic, SEQUENCE, "BasicOCSPResponse")?;
    let (tbs, _) = expect(basic, SEQUENCE, "tbsResponseData")?;
    // version [0] (optional), responderID [1] or [2], producedAt, responses.
    let mut rest = tbs;
    let mut responses = None;
    while !rest.is_empty() {
        let (tag, content, next) = element(rest)?;
        if tag == SEQUENCE {
            responses = Some(content);
            break;
        }
        rest = next;
    }
    let responses = responses.ok_or(OcspError::Malformed("responses"))?;
    let (single, others) = expect(responses, SEQUENCE, "SingleResponse")?;
    if !others.is_empty() {
        return Err(OcspError::NotOneCertificate);
    }
    let (cert_id, rest) = expect(single, SEQUENCE, "certID")?;
    let (_, id_rest) = expect(cert_id, SEQUENCE, "hashAlgorithm")?;
    let (_, id_rest) = expect(id_rest, OCTET_STRING, "issuerNameHash")?;
    let (_, id_rest) = expect(id_rest, OCTET_STRING, "issuerKeyHash")?;
    let (serial, _) = expect(id_rest, INTEGER, "serialNumber")?;
    let (_, _, rest) = element(rest)?; // certStatus
    let (this_update, rest) = expect(rest, GENERALIZED_TIME, "thisUpdate")?;
    let this_update = generalized_time(this_update).ok_or(OcspError::Malformed("thisUpdate"))?;
    let next_update = match element(rest) {
        Ok((CONTEXT_0, content, _)) => {
            let (time, _) = expect(content, GENERALIZED_TIME, "nextUpdate")?;
            Some(generalized_time(time).ok_or(OcspError::Malformed("nextUpdate"))?)
        }
        _ => None,
    };
    Ok(OcspSummary {
        serial: strip_leading_zeros(serial).to_vec(),
        this_update,
        next_update,
    })
}

/// An INTEGER's bytes without leading zero bytes (as serial numbers compare).
pub(crate) fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// `YYYYMMDDHHMMSS[.fff]Z` as Unix seconds.
fn generalized_time(raw: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(raw).ok()?;
    let digits = |range: std::ops::Range<usize>| text.get(range)?.parse::<u64>().ok();
    let (year, month, day) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (hour, minute, second) = (digits(8..10)?, digits(10..12)?, digits(12..14)?);
    if !text.ends_with('Z') || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generalized_time_is_unix_seconds() {
        assert_eq!(generalized_time(b"19700101000000Z"), Some(0));
        assert_eq!(generalized_time(b"20240229120000Z"), Some(1_709_208_000));
        assert_eq!(generalized_time(b"20240229120000"), None);
    }

    #[test]
    fn unsuccessful_and_truncated_responses_are_refused() {
        // OCSPResponse { responseStatus: tryLater (3) }
        assert_eq!(
            parse(&[0x30, 0x03, 0x0a, 0x01, 0x03]),
            Err(OcspError::Unsuccessful)
        );
        assert_eq!(
            parse(&[0x30, 0x03, 0x0a, 0x01, 0x00]),
            Err(OcspError::NoBody)
        );
        assert!(matches!(
            parse(&[0x30, 0x05, 0x0a]),
            Err(OcspError::Malformed(_))
        ));
    }
}
