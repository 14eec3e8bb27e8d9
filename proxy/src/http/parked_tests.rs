//! The parked set's bookkeeping with stand-in connections: slots reused lowest first,
//! the array's tail and room given back, deadlines kept and dropped with their slots.

use std::sync::atomic::AtomicUsize;

use crate::base::conn_info::ConnInfo;
use crate::http::{HcmRuntime, HttpContext};
use crate::upstream::ClusterManager;

use super::*;

const YAML: &str = r#"
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: parked_set_tests
          common_http_protocol_options: { idle_timeout: 60s }
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
          route_config: { virtual_hosts: [] }
"#;

/// A parked connection that never hears from its client and counts its close.
struct StandIn {
    shared: ConnShared,
    phases: Phases,
    closed: Arc<AtomicUsize>,
}

impl Parked for StandIn {
    fn shared(&self) -> &ConnShared {
        &self.shared
    }

    fn phases(&mut self) -> &mut Phases {
        &mut self.phases
    }

    fn poll_unpark(&mut self, _: &mut Context<'_>, _: &mut Vec<u8>) -> Poll<io::Result<bool>> {
        Poll::Pending
    }

    fn deregister(&mut self) -> io::Result<Option<RawFd>> {
        Ok(None)
    }

    fn resume(self: Box<Self>, _: Vec<u8>) {}

    fn close(self: Box<Self>, _: bool) {
        self.closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Makes stand-ins sharing one config and drain signal (one drain group).
async fn stand_ins() -> impl Fn() -> Held {
    let loaded = baton_config::load_yaml_str(YAML).expect("test config loads");
    let baton_config::model::NetworkFilter::Http(hcm) =
        &loaded.model.listeners[0].filter_chains[0].network
    else {
        panic!("not an HCM");
    };
    let runtime = Arc::new(HcmRuntime::new(hcm.clone()).expect("runtime"));
    let ctx = Arc::new(HttpContext::new(
        ClusterManager::initialize(&[]).await.expect("no clusters"),
    ));
    let drain = DrainSignal::never();
    let closed = Arc::new(AtomicUsize::new(0));
    move || {
        let addr = "127.0.0.1:1".parse().expect("addr");
        Held::Boxed(Box::new(StandIn {
            shared: ConnShared::new(
                runtime.clone(),
                ctx.clone(),
                ConnInfo::plain(addr, addr),
                drain.clone(),
            ),
            phases: Phases::default(),
            closed: closed.clone(),
        }))
    }
}

fn occupied(set: &ParkedSet) -> Vec<usize> {
    (0..set.slots.len())
        .filter(|&slot| set.slots[slot].conn.is_some())
        .collect()
}

#[tokio::test]
async fn slots_are_reused_lowest_first_and_a_burst_gives_its_room_back() {
    let stand_in = stand_ins().await;
    let mut set = ParkedSet::new(Arc::new(Shared::default()));
    for _ in 0..1_000 {
        set.insert(stand_in());
    }
    assert_eq!(occupied(&set).len(), 1_000);
    assert!(
        set.slots.iter().all(|slot| slot.deadline != NO_DEADLINE),
        "each has its idle timeout"
    );
    // Two leave from the middle: the next ones take the lowest free slot first.
    for slot in [7, 3] {
        assert!(set.remove(slot).is_some());
    }
    set.shrink();
    set.insert(stand_in());
    set.insert(stand_in());
    assert_eq!(occupied(&set).len(), 1_000);
    assert_eq!(set.slots.len(), 1_000, "3 and 7 were taken again");
    // All but the first leave: the array's tail and most of its room go.
    for slot in 1..1_000 {
        assert!(set.remove(slot).is_some());
    }
    set.shrink();
    assert_eq!(occupied(&set), vec![0]);
    assert_eq!(set.slots.len(), 1);
    assert!(set.slots.capacity() <= 2 + SLACK_SLOTS);
    assert!(set.free.len() <= 1 + SLACK_SLOTS);
    // The first one's deadline is the only one left to wait for.
    let slots = &set.slots;
    let next = set.deadlines.next_at(|key| deadline_is_current(slots, key));
    assert!(next.is_some());
    assert!(set.remove(0).is_some());
    let slots = &set.slots;
    assert_eq!(
        set.deadlines.next_at(|key| deadline_is_current(slots, key)),
        None
    );
    // A slot taken after the array shrank is a new one at its end.
    set.shrink();
    set.insert(stand_in());
    assert_eq!(occupied(&set), vec![0]);
}
