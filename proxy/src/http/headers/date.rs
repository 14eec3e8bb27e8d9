//! The `date` header value of this thread's responses: formatted once per second and
//! shared (a clone is a reference count), rather than formatted and copied into two new
//! buffers for every response.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderValue;

/// The value for one second.
struct Cached {
    secs: u64,
    value: HeaderValue,
}

thread_local! {
    static CACHED: RefCell<Option<Cached>> = const { RefCell::new(None) };
}

/// The current time as an HTTP date (IMF-fixdate), as `date` carries it.
pub fn now() -> HeaderValue {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with_borrow_mut(|cached| match cached {
        Some(c) if c.secs == secs => c.value.clone(),
        _ => {
            let value =
                HeaderValue::from_maybe_shared(bytes::Bytes::from(httpdate::fmt_http_date(now)))
                    // An HTTP date is visible ASCII.
                    .unwrap_or_else(|_| HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"));
            *cached = Some(Cached {
                secs,
                value: value.clone(),
            });
            value
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_is_an_http_date_of_now() {
        let before = SystemTime::now() - std::time::Duration::from_secs(1);
        let value = now();
        let parsed = httpdate::parse_http_date(value.to_str().expect("ascii")).expect("date");
        assert!(parsed >= before - std::time::Duration::from_secs(1));
        assert!(parsed <= SystemTime::now());
        assert_eq!(value.len(), 29);
    }
}
