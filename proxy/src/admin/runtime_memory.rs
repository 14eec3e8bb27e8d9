//! `/memory` and the POST-only endpoints Baton answers without the feature behind them
//! (`/runtime_modify`, `/cpuprofiler`, `/logging`), in Envoy's shapes (`/runtime` is
//! `runtime`). `/memory` reports glibc's `mallinfo2` under Envoy's (tcmalloc's) keys; see
//! [`memory_json`].

use serde::Serialize;

/// `/memory` with Envoy's keys in Envoy's order, values as decimal strings (uint64 in
/// proto3 JSON).
#[derive(Debug, Serialize)]
pub(super) struct MemoryJson {
    allocated: String,
    heap_size: String,
    pageheap_unmapped: String,
    pageheap_free: String,
    total_thread_cache: String,
    total_physical_bytes: String,
}

/// `/memory` from glibc's allocator: `allocated` = bytes in use (`uordblks` +
/// `hblkhd`), `heap_size` = bytes taken from the system (`arena` + `hblkhd`),
/// `pageheap_free` = free bytes the allocator keeps (`fordblks`), `pageheap_unmapped`
/// and `total_thread_cache` = 0 (glibc keeps no such pools apart), and
/// `total_physical_bytes` = the resident set size. Without glibc, all but the last are 0.
pub(super) fn memory_json() -> MemoryJson {
    use crate::base::heap::{allocator_bytes, resident_bytes};
    let (allocated, heap_size, free) = allocator_bytes();
    MemoryJson {
        allocated: allocated.to_string(),
        heap_size: heap_size.to_string(),
        pageheap_unmapped: "0".into(),
        pageheap_free: free.to_string(),
        total_thread_cache: "0".into(),
        total_physical_bytes: resident_bytes().to_string(),
    }
}

/// Answer to `POST /runtime_modify`: usage without parameters; with them, the overrides
/// go to the admin layer (an empty value removes one), or Envoy's 503 when the bootstrap
/// has no admin layer.
pub(super) fn runtime_modify(query: &str) -> (http::StatusCode, &'static str) {
    use crate::http::router::route_match::percent_decode;
    let pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (
                percent_decode(&k.replace('+', " ")).into_owned(),
                percent_decode(&v.replace('+', " ")).into_owned(),
            )
        })
        .collect();
    if pairs.is_empty() {
        (
            http::StatusCode::BAD_REQUEST,
            "usage: /runtime_modify?key1=value1&key2=value2&keyN=valueN\n       or send the parameters as form values\nuse an empty value to remove a previously added override",
        )
    } else {
        match crate::runtime::modify(&pairs) {
            Ok(()) => (http::StatusCode::OK, "OK\n"),
            Err(crate::runtime::ModifyError::NoAdminLayer) => (
                http::StatusCode::SERVICE_UNAVAILABLE,
                "No admin layer specified",
            ),
        }
    }
}

/// Answer to `POST /cpuprofiler`: the `enable` parameter is required; Baton has no CPU
/// profiler to start.
pub(super) fn cpuprofiler(query: &str) -> (http::StatusCode, &'static str) {
    let enable = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("enable="))
        .filter(|v| *v == "y" || *v == "n");
    match enable {
        None => (http::StatusCode::BAD_REQUEST, "?enable=<y|n>\n"),
        Some(_) => (
            http::StatusCode::NOT_IMPLEMENTED,
            "The current build does not support cpu profiler",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_has_envoys_keys_in_order() {
        let text = serde_json::to_string(&memory_json()).expect("json");
        let keys = [
            "allocated",
            "heap_size",
            "pageheap_unmapped",
            "pageheap_free",
            "total_thread_cache",
            "total_physical_bytes",
        ];
        let mut at = 0;
        for key in keys {
            let found = text[at..].find(key).expect(key);
            at += found;
        }
    }
}
