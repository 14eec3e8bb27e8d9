//! Blocks (a bundle's stats under one prefix as one region entry): they render exactly
//! as the same stats resolved one by one, a name looked up on its own finds its block's
//! stat, a block never repeats a name a single stat holds, counters survive the
//! generation that wrote them, and a region too small for a block degrades to singles.

mod support;

use baton_shared_stats::{
    BlockTemplate, BlockTemplateBuilder, GaugeMode, RenderOptions, StatsReader, StatsStore,
};
use support::TempDir;

fn template() -> BlockTemplate {
    let mut builder = BlockTemplateBuilder::default();
    builder.counter("rq_total");
    builder.gauge("cx_active", GaugeMode::Accumulate);
    builder.gauge("version", GaugeMode::NeverImport);
    builder.histogram("rq_time");
    builder.counter("circuit_breakers.default.cx_open");
    builder.build().expect("a valid template")
}

/// Uses every slot of a bundle under `prefix`, from a block when `block` is given.
fn use_bundle(store: &StatsStore, prefix: &str, template: &BlockTemplate, block: bool) {
    let block = block.then(|| store.block(prefix, template).expect("a block"));
    let name = |suffix: &str| format!("{prefix}{suffix}");
    let counter = |index, suffix| match &block {
        Some(block) => block.counter(index, suffix).expect("slot"),
        None => store.counter(&name(suffix)),
    };
    counter(0, "rq_total").add(3);
    counter(4, "circuit_breakers.default.cx_open").inc();
    match &block {
        Some(block) => {
            block.gauge(1, "cx_active").expect("slot").set(2);
            block.gauge(2, "version").expect("slot").set(9);
            block.histogram(3, "rq_time").expect("slot").record(12);
        }
        None => {
            store.gauge(&name("cx_active")).set(2);
            store
                .gauge_with_mode(&name("version"), GaugeMode::NeverImport)
                .set(9);
            store.histogram(&name("rq_time")).record(12);
        }
    }
}

fn rendered(store: &StatsStore) -> (String, String, String) {
    store.flush_histogram_intervals().unwrap();
    let snapshot = store.snapshot().unwrap();
    let options = RenderOptions::default();
    (
        snapshot.render_text(&options),
        snapshot.render_json(&options),
        snapshot.render_prometheus(&options),
    )
}

#[test]
fn a_block_renders_as_its_stats_resolved_one_by_one() {
    let template = template();
    let (blocks, singles) = (TempDir::new("blocks"), TempDir::new("singles"));
    let with_blocks = StatsStore::open_or_create(&blocks.config(), 0).unwrap();
    let with_singles = StatsStore::open_or_create(&singles.config(), 0).unwrap();
    for prefix in ["cluster.a.", "cluster.b.b."] {
        use_bundle(&with_blocks, prefix, &template, true);
        use_bundle(&with_singles, prefix, &template, false);
    }
    let (text, json, prometheus) = rendered(&with_blocks);
    assert_eq!((text.clone(), json, prometheus), rendered(&with_singles));
    assert!(
        text.contains("cluster.b.b.circuit_breakers.default.cx_open: 1\n"),
        "{text}"
    );
    // The offline reader expands blocks too.
    let reader = StatsReader::open(&blocks.0, 7).unwrap();
    assert_eq!(
        reader.snapshot().unwrap().value("cluster.a.rq_total"),
        Some(3)
    );
}

#[test]
fn a_name_on_its_own_finds_its_blocks_stat_and_blocks_are_shared() {
    let template = template();
    let dir = TempDir::new("shared");
    let first = StatsStore::open_or_create(&dir.config(), 0).unwrap();
    let second = StatsStore::open_or_create(&dir.config(), 1).unwrap();
    let block = first.block("cluster.a.", &template).unwrap();
    block.counter(0, "rq_total").unwrap().inc();
    // Another generation: the same block, and the same stat by name.
    let again = second.block("cluster.a.", &template).unwrap();
    again.counter(0, "rq_total").unwrap().inc();
    second.counter("cluster.a.rq_total").inc();
    first.counter("cluster.a.rq_total").inc();
    // A slot asked for with another kind or name is refused (the caller resolves singly).
    assert!(block.counter(1, "cx_active").is_none());
    assert!(block.counter(0, "rq_other").is_none());
    let snapshot = first.snapshot().unwrap();
    assert_eq!(snapshot.value("cluster.a.rq_total"), Some(4));
    let lines = snapshot
        .render_text(&RenderOptions::default())
        .lines()
        .filter(|l| l.starts_with("cluster.a.rq_total:"))
        .count();
    assert_eq!(lines, 1);
    assert_eq!(snapshot.value("server.stats_overflow"), Some(0));
}

#[test]
fn a_block_never_repeats_a_single_stats_name() {
    let template = template();
    let dir = TempDir::new("repeat");
    let store = StatsStore::open_or_create(&dir.config(), 0).unwrap();
    store.counter("cluster.a.rq_total").inc();
    assert!(store.block("cluster.a.", &template).is_none());
    // Another generation that met the single stat before the template was known.
    let other = StatsStore::open_or_create(&dir.config(), 1).unwrap();
    other
        .counter("cluster.b.circuit_breakers.default.cx_open")
        .inc();
    assert!(store.block("cluster.c.", &template).is_some());
    assert!(store.block("cluster.b.", &template).is_none());
    assert!(other.block("cluster.b.", &template).is_none());
    assert!(other.block("cluster.c.", &template).is_some());
}

#[test]
fn block_counters_outlive_their_generation_and_gauges_do_not() {
    let template = template();
    let dir = TempDir::new("fold");
    {
        let store = StatsStore::open_or_create(&dir.config(), 0).unwrap();
        use_bundle(&store, "cluster.a.", &template, true);
    }
    let store = StatsStore::open_or_create(&dir.config(), 1).unwrap();
    let snapshot = store.snapshot().unwrap();
    assert_eq!(snapshot.value("cluster.a.rq_total"), Some(3));
    assert_eq!(snapshot.value("cluster.a.cx_active"), Some(0));
    assert_eq!(
        snapshot.histogram("cluster.a.rq_time").map(|h| h.count()),
        Some(1)
    );
}

#[test]
fn a_region_too_small_for_a_block_counts_its_names_singly() {
    let template = template();
    let dir = TempDir::new("small");
    let mut config = dir.config();
    config.max_stats = 4;
    let store = StatsStore::open_or_create(&config, 0).unwrap();
    assert!(store.block("cluster.a.", &template).is_none());
    use_bundle(&store, "cluster.a.", &template, false);
    let snapshot = store.snapshot().unwrap();
    assert_eq!(snapshot.value("cluster.a.rq_total"), Some(3));
    // The overflow counter and three of the five names fit; two did not.
    assert_eq!(snapshot.value("server.stats_overflow"), Some(2));
}
