//! Cost of one counter increment through the shared region versus a plain local
//! `AtomicU64`, plus a histogram record and a handle lookup for scale.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use baton_shared_stats::{RegionConfig, StatsStore};
use criterion::{criterion_group, criterion_main, Criterion};

fn increments(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("baton-stats-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = StatsStore::open_or_create(&RegionConfig::new(&dir, 1), 0).expect("open region");
    let counter = store.counter("cluster.bench.upstream_rq_total");
    let histogram = store.histogram("cluster.bench.upstream_rq_time");
    let plain = AtomicU64::new(0);

    let mut group = c.benchmark_group("counter_increment");
    group.bench_function("region_counter_inc", |b| {
        b.iter(|| black_box(&counter).inc())
    });
    group.bench_function("plain_atomic_u64_fetch_add", |b| {
        b.iter(|| black_box(&plain).fetch_add(1, Ordering::Relaxed))
    });
    group.finish();
    c.bench_function("region_histogram_record", |b| {
        b.iter(|| black_box(&histogram).record(black_box(42)))
    });
    c.bench_function("resolve_existing_counter_handle", |b| {
        b.iter(|| store.counter(black_box("cluster.bench.upstream_rq_total")))
    });
    drop((counter, histogram, store));
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, increments);
criterion_main!(benches);
