//! Cross-process behaviour of the region: the test binary re-executes itself as children
//! (selected by `BATON_STATS_CHILD_ROLE`) that map the same region as the test.

mod support;

use std::time::Duration;

use baton_shared_stats::testing::{hold_allocation_lock, CRASH_MID_FOLD_ENV};
use baton_shared_stats::{GaugeMode, StatsStore};
use support::{announce, child_role, ChildGuard, TempDir};

const CHILD_ENTRY: &str = "child_entry";
const INCREMENTS_PER_CHILD: u64 = 1_000_000;
const PARENT_INCREMENTS: u64 = 300_000;

/// Entry point of every child role; a no-op in the normal test run.
#[test]
fn child_entry() {
    let Some((role, config)) = child_role() else {
        return;
    };
    match role.as_str() {
        "increment" => {
            let store = StatsStore::open_or_create(&config, 1).expect("child open");
            let counter = store.counter("cluster.shared.upstream_rq_total");
            let histogram = store.histogram("cluster.shared.upstream_rq_time");
            // Start together with the other processes so the increments really overlap.
            announce("ready");
            let go = config.dir.join("go");
            for _ in 0..6000 {
                if go.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            for i in 0..INCREMENTS_PER_CHILD {
                counter.inc();
                if i % 1000 == 0 {
                    histogram.record(7);
                }
            }
        }
        "hold" => {
            let store = StatsStore::open_or_create(&config, 2).expect("child open");
            store.counter("cluster.a.upstream_rq_total").add(7);
            store.gauge("cluster.a.upstream_cx_active").set(5);
            store
                .gauge_with_mode("server.live", GaugeMode::NeverImport)
                .set(1);
            store.histogram("cluster.a.upstream_rq_time").record(3);
            announce("ready");
            std::thread::sleep(Duration::from_secs(60));
        }
        "lock" => {
            let store = StatsStore::open_or_create(&config, 3).expect("child open");
            // The parent kills us while we sleep holding the lock.
            let _ = hold_allocation_lock(&store, Duration::from_secs(60), || announce("locked"));
        }
        "open" => {
            // With CRASH_MID_FOLD_ENV set this aborts while folding a dead generation.
            let _store = StatsStore::open_or_create(&config, 4);
        }
        other => panic!("unknown child role {other}"),
    }
}

#[test]
fn two_processes_incrementing_one_counter_add_up_exactly() {
    let dir = TempDir::new("concurrent");
    let config = dir.config();
    let parent = StatsStore::open_or_create(&config, 0).unwrap();
    let parent_counter = parent.counter("cluster.shared.upstream_rq_total");
    let mut children: Vec<ChildGuard> = (0..2)
        .map(|_| ChildGuard::spawn(CHILD_ENTRY, "increment", &dir.0, &[]))
        .collect();
    for child in &children {
        child.wait_for_line("ready");
    }
    std::fs::write(dir.0.join("go"), b"").unwrap();
    for _ in 0..PARENT_INCREMENTS {
        parent_counter.inc();
    }
    for child in &mut children {
        assert!(child.wait().success());
    }
    let snapshot = parent.snapshot().unwrap();
    assert_eq!(
        snapshot.value("cluster.shared.upstream_rq_total"),
        Some(2 * INCREMENTS_PER_CHILD + PARENT_INCREMENTS)
    );
    let histogram = snapshot
        .histogram("cluster.shared.upstream_rq_time")
        .unwrap();
    assert_eq!(histogram.count(), 2 * INCREMENTS_PER_CHILD / 1000);
    // Both children exited cleanly, so only the parent's slot is still in use.
    assert_eq!(parent.generations().len(), 1);
    assert_eq!(parent.overflow_count(), 0);
}

#[test]
fn sigkilled_generation_leaves_counters_but_no_gauges() {
    let dir = TempDir::new("sigkill");
    let config = dir.config();
    let parent = StatsStore::open_or_create(&config, 0).unwrap();
    parent.gauge("cluster.a.upstream_cx_active").set(2);
    let mut child = ChildGuard::spawn(CHILD_ENTRY, "hold", &dir.0, &[]);
    child.wait_for_line("ready");
    let before = parent.snapshot().unwrap();
    assert_eq!(before.value("cluster.a.upstream_cx_active"), Some(7));
    assert_eq!(before.value("cluster.a.upstream_rq_total"), Some(7));
    assert_eq!(before.value("server.live"), Some(1));

    child.sigkill();
    // Not reaped yet: a zombie must already count as dead. Bounded wait for the kernel to
    // turn the child into a zombie.
    let mut after = parent.snapshot().unwrap();
    for _ in 0..500 {
        if after.value("cluster.a.upstream_cx_active") == Some(2) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        after = parent.snapshot().unwrap();
    }
    assert_eq!(after.value("cluster.a.upstream_cx_active"), Some(2));
    assert_eq!(after.value("server.live"), Some(0));
    assert_eq!(after.value("cluster.a.upstream_rq_total"), Some(7));
    assert_eq!(
        after
            .histogram("cluster.a.upstream_rq_time")
            .unwrap()
            .count(),
        1
    );
    child.wait();
    parent.reap_dead_generations().unwrap();
    assert_eq!(
        parent.generations().len(),
        1,
        "dead slot was folded and freed"
    );
    assert_eq!(
        parent
            .snapshot()
            .unwrap()
            .value("cluster.a.upstream_rq_total"),
        Some(7),
        "folding moved the counter into retired without changing it"
    );
    // The counter survives the parent too, read offline after everyone is gone.
    drop(parent);
    let reader = baton_shared_stats::StatsReader::open(&dir.0, 7).unwrap();
    let offline = reader.snapshot().unwrap();
    assert_eq!(offline.value("cluster.a.upstream_rq_total"), Some(7));
    assert_eq!(offline.value("cluster.a.upstream_cx_active"), Some(0));
    assert!(reader.generations().is_empty());
}

#[test]
fn allocation_lock_of_a_killed_holder_is_recovered() {
    let dir = TempDir::new("lock");
    let config = dir.config();
    let parent = StatsStore::open_or_create(&config, 0).unwrap();
    let mut child = ChildGuard::spawn(CHILD_ENTRY, "lock", &dir.0, &[]);
    child.wait_for_line("locked");
    // While the live child holds the lock, a new name cannot be allocated in the region.
    let mut impatient_config = config.clone();
    impatient_config.lock_timeout = Duration::from_millis(50);
    assert!(matches!(
        StatsStore::open_or_create(&impatient_config, 9).err(),
        Some(baton_shared_stats::StatsError::LockTimeout { holder_pid }) if holder_pid == child.pid()
    ));
    child.sigkill();
    child.wait();
    let counter = parent.counter("listener.127.0.0.1_80.downstream_cx_total");
    counter.add(3);
    assert_eq!(
        parent.overflow_count(),
        0,
        "allocation fell back instead of recovering"
    );
    let snapshot = parent.snapshot().unwrap();
    assert_eq!(
        snapshot.value("listener.127.0.0.1_80.downstream_cx_total"),
        Some(3)
    );
}

#[test]
fn crash_in_the_middle_of_a_fold_counts_every_increment_once() {
    let dir = TempDir::new("foldcrash");
    let config = dir.config();
    let mut victim = ChildGuard::spawn(CHILD_ENTRY, "hold", &dir.0, &[]);
    victim.wait_for_line("ready");
    victim.sigkill();
    victim.wait();
    // This child reaps the dead victim and aborts after journaling the first cell move.
    let mut folder = ChildGuard::spawn(CHILD_ENTRY, "open", &dir.0, &[(CRASH_MID_FOLD_ENV, "1")]);
    let status = folder.wait();
    assert!(
        !status.success(),
        "the folding child was supposed to abort mid-fold"
    );

    let parent = StatsStore::open_or_create(&config, 0).unwrap();
    let snapshot = parent.snapshot().unwrap();
    assert_eq!(snapshot.value("cluster.a.upstream_rq_total"), Some(7));
    assert_eq!(snapshot.value("cluster.a.upstream_cx_active"), Some(0));
    let histogram = snapshot.histogram("cluster.a.upstream_rq_time").unwrap();
    assert_eq!((histogram.count(), histogram.sum), (1, 3));
    assert_eq!(parent.generations().len(), 1);
}
