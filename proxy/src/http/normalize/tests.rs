//! The order of the path steps and the verdicts, with Envoy 1.40's answers, and the
//! hot-path promise: a normal request allocates nothing (counted by a test allocator).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use baton_config::model::{EscapedSlashesAction, HttpConnectionManager};

use super::{host, normalize_path, PathOutcome, PathVerdict};

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// The system allocator, counting allocations per thread.
struct CountingAllocator;

fn count_allocation() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

#[allow(unsafe_code)]
// SAFETY: every call is forwarded unchanged to the system allocator; the wrapper only
// bumps a thread-local counter (const-initialised, so counting never allocates).
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: CountingAllocator = CountingAllocator;

/// Allocations `f` makes on this thread (the HTTP/1 framing check and the filter chain
/// tests use it too).
pub(crate) fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

fn hcm(normalize: bool, merge: bool, escaped: EscapedSlashesAction) -> HttpConnectionManager {
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
    h.normalize_path = normalize;
    h.merge_slashes = merge;
    h.path_with_escaped_slashes_action = escaped;
    h
}

fn verdict(h: &HttpConnectionManager, path: &str) -> PathOutcome {
    normalize_path(path, h)
}

fn outcome(rewritten: Option<&str>, verdict: PathVerdict) -> PathOutcome {
    PathOutcome {
        rewritten: rewritten.map(str::to_string),
        verdict,
    }
}

fn to(path: &str) -> PathOutcome {
    outcome(Some(path), PathVerdict::Continue)
}

fn unchanged() -> PathOutcome {
    outcome(None, PathVerdict::Continue)
}

fn reject(as_logged: Option<&str>) -> PathOutcome {
    outcome(as_logged, PathVerdict::Reject)
}

fn redirect(location: &str) -> PathOutcome {
    outcome(Some(location), PathVerdict::Redirect)
}

const KEEP: EscapedSlashesAction = EscapedSlashesAction::KeepUnchanged;

#[test]
fn query_is_never_touched() {
    let both = hcm(true, true, KEEP);
    assert_eq!(verdict(&both, "/a/b?x=/../%41"), unchanged());
    assert_eq!(verdict(&both, "/a/b/../?q"), to("/a/?q"));
    assert_eq!(verdict(&both, "/?%2e%2e//"), unchanged());
    assert_eq!(
        verdict(&hcm(false, true, KEEP), "/a//b?x=//y"),
        to("/a/b?x=//y")
    );
}

#[test]
fn merge_runs_after_normalisation() {
    let both = hcm(true, true, KEEP);
    assert_eq!(verdict(&both, "/a//..//b"), to("/a/b"));
    assert_eq!(verdict(&both, "/a/.//./b"), to("/a/b"));
    assert_eq!(verdict(&both, "//../a"), to("/a"));
    assert_eq!(verdict(&both, "///.."), to("//"));
    assert_eq!(verdict(&both, "/a/%2e%2e//b"), to("/b"));
    assert_eq!(verdict(&both, "/a\\\\\\b"), to("/a/b"));
    assert_eq!(verdict(&both, "//"), unchanged());
    // merge_slashes alone leaves dot segments and backslashes.
    let merge = hcm(false, true, KEEP);
    assert_eq!(verdict(&merge, "/a/../b//"), to("/a/../b/"));
    assert_eq!(verdict(&merge, "/a\\\\b"), unchanged());
}

#[test]
fn unnormalisable_paths_are_rejected() {
    let norm = hcm(true, false, KEEP);
    assert_eq!(verdict(&norm, "/a%00b"), reject(None));
    assert_eq!(verdict(&norm, "/%2e%00"), reject(None));
    // Escaped slashes unescaped before the failure stay unescaped (Envoy logs that).
    let forward_then_fail = hcm(true, false, EscapedSlashesAction::UnescapeAndForward);
    assert_eq!(
        verdict(&forward_then_fail, "/a%2fb%00?q=%2f"),
        reject(Some("/a/b%00?q=%2f"))
    );
    // Without normalize_path the same path is forwarded.
    assert_eq!(verdict(&hcm(false, true, KEEP), "/a%00b"), unchanged());
}

#[test]
fn escaped_slash_actions() {
    let refuse = hcm(false, false, EscapedSlashesAction::RejectRequest);
    assert_eq!(verdict(&refuse, "/a%2fb?q=%2f"), reject(Some("/a/b?q=%2f")));
    assert_eq!(verdict(&refuse, "/a%5Cb"), reject(Some("/a\\b")));
    assert_eq!(verdict(&refuse, "/a?x=%2f"), unchanged());
    assert_eq!(verdict(&refuse, "/a%252f"), unchanged());

    let redirecting = hcm(true, true, EscapedSlashesAction::UnescapeAndRedirect);
    assert_eq!(verdict(&redirecting, "/a%2fb"), redirect("/a/b"));
    assert_eq!(verdict(&redirecting, "/a%5c..%5Cb"), redirect("/b"));
    assert_eq!(
        verdict(&redirecting, "/a%2F%2F/./c?x=%2F"),
        redirect("/a/c?x=%2F")
    );
    assert_eq!(verdict(&redirecting, "/a/../b"), to("/b"));

    let forward = hcm(false, false, EscapedSlashesAction::UnescapeAndForward);
    assert_eq!(verdict(&forward, "/a%2fb"), to("/a/b"));
    assert_eq!(verdict(&forward, "/a%5c..%5Cb"), to("/a\\..\\b"));
    assert_eq!(
        verdict(&forward, "/a%2F%2F/./c?x=%2F"),
        to("/a///./c?x=%2F")
    );

    let keep = hcm(true, false, KEEP);
    assert_eq!(verdict(&keep, "/a/%2f/b"), unchanged());
}

#[test]
fn normal_requests_allocate_nothing() {
    let all_on = hcm(true, true, EscapedSlashesAction::UnescapeAndRedirect);
    for path in [
        "/",
        "/api/v1/users/42?x=/../%2f",
        "/a.b/..c/%20%3A/~x",
        "/static/app.js",
    ] {
        let mut outcome = None;
        let n = allocations_during(|| outcome = Some(normalize_path(path, &all_on)));
        assert_eq!(outcome, Some(unchanged()), "{path}");
        assert_eq!(n, 0, "{path} allocated");
    }
    for (h, port) in [
        ("example.com", None),
        ("example.com:80", Some(8080)),
        ("[::1]", None),
    ] {
        assert_eq!(
            allocations_during(|| {
                std::hint::black_box(host::strip_port(h, port));
            }),
            0,
            "{h}"
        );
    }
    // The counter does count.
    assert!(
        allocations_during(|| drop(std::hint::black_box(normalize_path("/a/../b", &all_on)))) > 0
    );
}
