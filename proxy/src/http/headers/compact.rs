//! Response header values copied out of the buffers they were parsed from, before an
//! HTTP/2 codec encodes them.
//!
//! h2's HPACK encoder keeps each header it indexes in the connection's dynamic table
//! (up to the 4,096 bytes the client allows by default) for as long as the entry is not
//! evicted, idle connections included. A value parsed by hyper's HTTP/1 client, or by
//! h2's decoder on an HTTP/2 upstream, is a slice of that upstream connection's read
//! buffer (8 KiB or more), and the slice keeps the whole buffer alive: an idle HTTP/2
//! connection held an 8 KiB upstream read buffer per response whose headers were
//! indexed. Copying the values that may be indexed into one buffer of their own length
//! leaves the table holding that instead. The bytes sent do not change.

use bytes::BytesMut;
use http::header::{
    AGE, AUTHORIZATION, CONTENT_LENGTH, COOKIE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LOCATION,
    SET_COOKIE,
};
use http::{HeaderMap, HeaderName, HeaderValue};

/// Whether h2's HPACK encoder may keep this header in its dynamic table: not a
/// sensitive value, and not one of the names whose values it never indexes (its
/// `skip_value_index`, borrowed from nghttp2). Should h2 index more names one day,
/// their values would be left shared, as before.
fn may_be_indexed(name: &HeaderName, value: &HeaderValue) -> bool {
    !value.is_sensitive()
        && !matches!(
            *name,
            AGE | AUTHORIZATION
                | CONTENT_LENGTH
                | ETAG
                | IF_MODIFIED_SINCE
                | IF_NONE_MATCH
                | LOCATION
                | COOKIE
                | SET_COOKIE
        )
}

/// Replaces the values of `headers` that h2 may index with copies in one new buffer
/// (one allocation for the whole map).
pub fn compact_values(headers: &mut HeaderMap) {
    let total: usize = headers
        .iter()
        .filter(|(name, value)| may_be_indexed(name, value))
        .map(|(_, value)| value.len())
        .sum();
    if total == 0 {
        return;
    }
    let mut copied = BytesMut::with_capacity(total);
    for (name, value) in headers.iter() {
        if may_be_indexed(name, value) {
            copied.extend_from_slice(value.as_bytes());
        }
    }
    // One look at the whole buffer instead of a check of every value's bytes: the values
    // were valid already, and the unchecked constructor wants them UTF-8, which ASCII is
    // (checking each value again was most of this function's cost per response).
    let ascii = copied.is_ascii();
    let mut copied = copied.freeze();
    for (name, value) in headers.iter_mut() {
        if !may_be_indexed(name, value) {
            continue;
        }
        let bytes = copied.split_to(value.len());
        if ascii {
            #[allow(unsafe_code)]
            // SAFETY: the bytes are ASCII (so UTF-8, as the constructor requires) and a
            // copy of a valid header value.
            let copy = unsafe { HeaderValue::from_maybe_shared_unchecked(bytes) };
            *value = copy;
        } else if let Ok(copy) = HeaderValue::from_maybe_shared(bytes) {
            // obs-text: checked. On the impossible failure the original stays.
            *value = copy;
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    /// A value that is a slice of a larger buffer, as hyper's parsers make them.
    fn sliced(buffer: &Bytes, text: &str) -> HeaderValue {
        sliced_bytes(buffer, text.as_bytes())
    }

    #[test]
    fn copies_indexable_values_and_keeps_order_and_flags() {
        let mut read_buffer = BytesMut::with_capacity(8192);
        read_buffer.extend_from_slice(b"text/plain nginx 11 /x secret two");
        let read_buffer = read_buffer.freeze();
        let mut headers = HeaderMap::new();
        headers.insert("content-type", sliced(&read_buffer, "text/plain"));
        headers.append("x-multi", sliced(&read_buffer, "nginx"));
        headers.append("x-multi", sliced(&read_buffer, "two"));
        headers.insert(CONTENT_LENGTH, sliced(&read_buffer, "11"));
        headers.insert(LOCATION, sliced(&read_buffer, "/x"));
        let mut secret = sliced(&read_buffer, "secret");
        secret.set_sensitive(true);
        headers.insert("x-secret", secret);
        let before = headers.clone();

        compact_values(&mut headers);

        assert_eq!(headers, before);
        assert!(headers["x-secret"].is_sensitive());
        let multi: Vec<_> = headers.get_all("x-multi").iter().collect();
        assert_eq!(multi, ["nginx", "two"]);
        // The read buffer is now held only by `before` and the values left shared.
        drop(before);
        let left = [
            &headers[CONTENT_LENGTH],
            &headers[LOCATION],
            &headers["x-secret"],
        ];
        let in_buffer = |v: &HeaderValue| {
            let range = read_buffer.as_ptr_range();
            range.contains(&v.as_bytes().as_ptr())
        };
        assert!(left.iter().all(|v| in_buffer(v)));
        assert!(!in_buffer(&headers["content-type"]));
        assert!(headers.get_all("x-multi").iter().all(|v| !in_buffer(v)));
    }

    #[test]
    fn copies_obs_text_values_too() {
        let read_buffer = Bytes::from_static(b"caf\xe9 ok");
        let mut headers = HeaderMap::new();
        headers.insert("x-obs", sliced_bytes(&read_buffer, b"caf\xe9"));
        headers.insert("x-ok", sliced_bytes(&read_buffer, b"ok"));
        let before = headers.clone();
        compact_values(&mut headers);
        assert_eq!(headers, before);
        assert_eq!(headers["x-obs"].as_bytes(), b"caf\xe9");
    }

    fn sliced_bytes(buffer: &Bytes, text: &[u8]) -> HeaderValue {
        let at = buffer
            .windows(text.len())
            .position(|w| w == text)
            .expect("text in buffer");
        HeaderValue::from_maybe_shared(buffer.slice(at..at + text.len())).expect("valid")
    }

    #[test]
    fn leaves_a_map_without_indexable_values_alone() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("5"));
        compact_values(&mut headers);
        assert_eq!(headers[CONTENT_LENGTH], "5");
    }
}
