//! Cost of the rare paths at scale: allocating 100k new stat names, and rendering 100k
//! stats as `/stats` text and `/stats/prometheus` (tag extraction included).

use std::hint::black_box;

use baton_shared_stats::{RegionConfig, RenderOptions, StatsStore};
use criterion::{criterion_group, criterion_main, Criterion};

const CLUSTERS: usize = 1000;
const STATS_PER_CLUSTER: usize = 100;

fn big_config(dir: &std::path::Path) -> RegionConfig {
    let mut config = RegionConfig::new(dir, 1);
    config.max_stats = 256 * 1024;
    config.max_cells = 512 * 1024;
    config.name_arena_bytes = 16 * 1024 * 1024;
    config
}

fn names() -> Vec<String> {
    (0..CLUSTERS)
        .flat_map(|c| {
            (0..STATS_PER_CLUSTER).map(move |s| format!("cluster.backend_{c}.upstream_stat_{s}"))
        })
        .collect()
}

fn at_scale(c: &mut Criterion) {
    let root = std::env::temp_dir().join(format!("baton-stats-render-{}", std::process::id()));
    let names = names();
    let mut group = c.benchmark_group("scale_100k_stats");
    group.sample_size(10);
    let mut round = 0;
    // Only the resolution loop is timed, not creating or removing the region file.
    group.bench_function("allocate_100k_counters", |b| {
        b.iter_custom(|iterations| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iterations {
                round += 1;
                let dir = root.join(round.to_string());
                let store = StatsStore::open_or_create(&big_config(&dir), 0).expect("open");
                let started = std::time::Instant::now();
                for name in &names {
                    black_box(store.counter(name));
                }
                total += started.elapsed();
                drop(store);
                let _ = std::fs::remove_dir_all(&dir);
            }
            total
        })
    });
    let dir = root.join("render");
    let store = StatsStore::open_or_create(&big_config(&dir), 0).expect("open");
    for (i, name) in names.iter().enumerate() {
        store.counter(name).add(i as u64);
    }
    let options = RenderOptions::default();
    group.bench_function("snapshot", |b| {
        b.iter(|| store.snapshot().expect("snapshot"))
    });
    let snapshot = store.snapshot().expect("snapshot");
    group.bench_function("render_text", |b| b.iter(|| snapshot.render_text(&options)));
    group.bench_function("render_prometheus", |b| {
        b.iter(|| snapshot.render_prometheus(&options))
    });
    group.finish();
    drop(store);
    let _ = std::fs::remove_dir_all(&root);
}

criterion_group!(benches, at_scale);
criterion_main!(benches);
