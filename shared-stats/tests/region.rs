//! Single-process behaviour of the region file: creation permissions, clear errors for
//! incompatible, truncated and corrupt files, replacement rules, region full, reset.

mod support;

use std::os::unix::fs::{FileExt, PermissionsExt};

use baton_shared_stats::{RenderOptions, StatsError, StatsReader, StatsStore, LAYOUT_VERSION};
use support::TempDir;

fn patch(path: &std::path::Path, offset: u64, bytes: &[u8]) {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, offset).unwrap();
}

#[test]
fn region_file_is_private_and_keyed_by_base_id() {
    let dir = TempDir::new("perms");
    let mut config = dir.config();
    let store = StatsStore::open_or_create(&config, 0).unwrap();
    config.base_id = 8;
    let other = StatsStore::open_or_create(&config, 0).unwrap();
    assert_ne!(store.path(), other.path());
    let file_mode = std::fs::metadata(store.path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(file_mode & 0o777, 0o600);
    let dir_mode = std::fs::metadata(&dir.0).unwrap().permissions().mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    store.counter("a").inc();
    assert_eq!(other.snapshot().unwrap().value("a"), None);
}

#[test]
fn group_accessible_directory_is_refused() {
    let dir = TempDir::new("insecure");
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = StatsStore::open_or_create(&dir.config(), 0).err().unwrap();
    assert!(matches!(err, StatsError::InsecureDirectory { .. }), "{err}");
}

#[test]
fn layout_version_mismatch_is_a_clear_error_and_replaced_only_when_unused() {
    let dir = TempDir::new("version");
    let config = dir.config();
    let path = {
        let store = StatsStore::open_or_create(&config, 0).unwrap();
        store.counter("kept").inc();
        store.path().to_path_buf()
    };
    patch(&path, 8, &(LAYOUT_VERSION + 98).to_le_bytes());

    let err = StatsStore::open_existing(&config, 0).err().unwrap();
    match &err {
        StatsError::LayoutVersion {
            found, expected, ..
        } => {
            assert_eq!((*found, *expected), (LAYOUT_VERSION + 98, LAYOUT_VERSION));
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(
        err.to_string()
            .contains(&format!("layout version {}", LAYOUT_VERSION + 98)),
        "{err}"
    );
    assert!(matches!(
        StatsReader::open(&dir.0, 7).err().unwrap(),
        StatsError::LayoutVersion { .. }
    ));

    // A live holder of the old file: it must not be replaced under it.
    let holder = std::fs::File::open(&path).unwrap();
    nix::fcntl::Flock::lock(holder, nix::fcntl::FlockArg::LockSharedNonblock)
        .map(|guard| {
            let err = StatsStore::open_or_create(&config, 0).err().unwrap();
            assert!(matches!(err, StatsError::InUse { .. }), "{err}");
            drop(guard);
        })
        .unwrap();

    // Nobody uses it: a fresh region replaces it and the bad one is kept aside.
    let fresh = StatsStore::open_or_create(&config, 0).unwrap();
    assert_eq!(fresh.snapshot().unwrap().value("kept"), None);
    assert!(path.with_extension("region.bad").exists());
}

#[test]
fn truncated_and_corrupt_files_are_reported() {
    let dir = TempDir::new("corrupt");
    let config = dir.config();
    let path = {
        let store = StatsStore::open_or_create(&config, 0).unwrap();
        store.path().to_path_buf()
    };
    let full_len = std::fs::metadata(&path).unwrap().len();

    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(full_len / 2).unwrap();
    match StatsStore::open_existing(&config, 0).err().unwrap() {
        StatsError::Truncated {
            expected, actual, ..
        } => {
            assert_eq!((expected, actual), (full_len, full_len / 2));
        }
        other => panic!("unexpected error {other}"),
    }
    file.set_len(100).unwrap();
    assert!(matches!(
        StatsReader::open(&dir.0, 7).err().unwrap(),
        StatsError::Truncated { .. }
    ));
    file.set_len(full_len).unwrap();

    patch(&path, 0, b"NOTSTATS");
    assert!(matches!(
        StatsStore::open_existing(&config, 0).err().unwrap(),
        StatsError::BadMagic { .. }
    ));
    patch(&path, 0, b"BATNSTAT");
    // Stat count beyond capacity.
    patch(&path, 48, &u32::MAX.to_le_bytes());
    let err = StatsStore::open_existing(&config, 0).err().unwrap();
    assert!(matches!(err, StatsError::Corrupt { .. }), "{err}");
    // Entry 0 with an unknown kind is caught when the table is read.
    patch(&path, 48, &1u32.to_le_bytes());
    patch(&path, 4096, &[0xee]);
    let reader = StatsReader::open(&dir.0, 7).unwrap();
    let err = reader.snapshot().err().unwrap();
    assert!(err.to_string().contains("unknown kind"), "{err}");
}

#[test]
fn full_region_counts_overflow_and_keeps_counting_locally() {
    let dir = TempDir::new("full");
    let mut config = dir.config();
    config.max_stats = 4; // the overflow counter plus three
    let store = StatsStore::open_or_create(&config, 0).unwrap();
    let counters: Vec<_> = (0..6).map(|i| store.counter(&format!("c.{i}"))).collect();
    for (i, counter) in counters.iter().enumerate() {
        counter.add(i as u64 + 1);
    }
    // Resolving an overflowed name again reuses its local cell and is not recounted.
    store.counter("c.5").add(10);
    assert_eq!(store.overflow_count(), 3);
    let snapshot = store.snapshot().unwrap();
    assert_eq!(snapshot.value("server.stats_overflow"), Some(3));
    assert_eq!(snapshot.value("c.0"), Some(1));
    assert_eq!(snapshot.value("c.4"), Some(5));
    assert_eq!(snapshot.value("c.5"), Some(16));
    let gauge = store.gauge("g.overflowed");
    gauge.set(4);
    store.histogram("h.overflowed").record(20);
    let snapshot = store.snapshot().unwrap();
    assert_eq!(snapshot.value("g.overflowed"), Some(4));
    assert_eq!(snapshot.histogram("h.overflowed").unwrap().count(), 1);
    assert_eq!(store.overflow_count(), 5);
}

#[test]
fn a_batch_resolves_like_single_calls_and_sees_other_generations_names() {
    let dir = TempDir::new("batch");
    let mut config = dir.config();
    config.max_stats = 8; // the overflow counter plus seven
    let old = StatsStore::open_or_create(&config, 0).unwrap();
    let new = StatsStore::open_or_create(&config, 1).unwrap();
    old.counter("b.shared").add(3);
    {
        let mut batch = new.batch();
        // Allocated by the other generation after this store last looked.
        batch.counter("b.shared").add(4);
        batch.counter("b.own").inc();
        batch
            .gauge_with_mode("b.gauge", baton_shared_stats::GaugeMode::Accumulate)
            .set(7);
        batch.histogram("b.histogram").record(12);
        // The same name twice in one batch is one stat.
        batch.counter("b.own").inc();
        // Past the region's room: counted locally, like single calls.
        for i in 0..4 {
            batch.counter(&format!("b.extra.{i}")).inc();
        }
    }
    new.counter("b.own").inc();
    let snapshot = new.snapshot().unwrap();
    assert_eq!(snapshot.value("b.shared"), Some(7));
    assert_eq!(snapshot.value("b.own"), Some(3));
    assert_eq!(snapshot.value("b.gauge"), Some(7));
    assert_eq!(snapshot.histogram("b.histogram").unwrap().count(), 1);
    assert_eq!(snapshot.value("b.extra.0"), Some(1));
    assert_eq!(snapshot.value("b.extra.3"), Some(1));
    assert_eq!(new.overflow_count(), 1);
    // The old generation sees the names the batch put in the region.
    assert_eq!(old.snapshot().unwrap().value("b.own"), Some(3));
}

#[test]
fn name_reused_with_another_kind_falls_back_without_corrupting() {
    let dir = TempDir::new("kind");
    let store = StatsStore::open_or_create(&dir.config(), 0).unwrap();
    store.counter("x").add(2);
    store.gauge("x").set(9);
    store.gauge("x").set(10); // same local fallback, not counted again
    assert_eq!(store.snapshot().unwrap().value("x"), Some(2));
    assert_eq!(store.overflow_count(), 1);
}

#[test]
fn reset_counters_zeroes_counters_for_every_generation_but_not_gauges() {
    let dir = TempDir::new("reset");
    let config = dir.config();
    let old = StatsStore::open_or_create(&config, 0).unwrap();
    let new = StatsStore::open_or_create(&config, 1).unwrap();
    old.counter("rq").add(5);
    new.counter("rq").add(3);
    new.gauge("active").set(4);
    new.reset_counters().unwrap();
    let snapshot = old.snapshot().unwrap();
    assert_eq!(snapshot.value("rq"), Some(0));
    assert_eq!(snapshot.value("active"), Some(4));
    old.counter("rq").inc();
    drop(old); // the old generation exits: its counts fold into retired, still reset-relative
    let snapshot = new.snapshot().unwrap();
    assert_eq!(snapshot.value("rq"), Some(1));
    // usedonly still lists a reset counter, as Envoy does.
    let used = snapshot.render_text(&RenderOptions::from_query("usedonly").unwrap());
    assert!(used.contains("rq: 1\n"), "{used}");
}

#[test]
fn hot_restart_keeps_counters_and_never_import_gauges_follow_the_newest() {
    let dir = TempDir::new("restart");
    let config = dir.config();
    let old = StatsStore::open_or_create(&config, 0).unwrap();
    let live = baton_shared_stats::GaugeMode::NeverImport;
    old.gauge_with_mode("server.hot_restart_epoch", live).set(0);
    old.gauge("http.ingress.downstream_cx_active").set(3);
    old.counter("http.ingress.downstream_rq_total").add(10);
    let new = StatsStore::open_or_create(&config, 1).unwrap();
    new.gauge_with_mode("server.hot_restart_epoch", live).set(1);
    new.gauge("http.ingress.downstream_cx_active").set(1);
    new.counter("http.ingress.downstream_rq_total").add(2);
    let during = new.snapshot().unwrap();
    assert_eq!(during.value("server.hot_restart_epoch"), Some(1));
    assert_eq!(during.value("http.ingress.downstream_cx_active"), Some(4));
    assert_eq!(during.value("http.ingress.downstream_rq_total"), Some(12));
    drop(old);
    let after = new.snapshot().unwrap();
    assert_eq!(after.value("http.ingress.downstream_cx_active"), Some(1));
    assert_eq!(after.value("http.ingress.downstream_rq_total"), Some(12));
    assert_eq!(new.generations().len(), 1);
}

#[test]
fn text_json_and_filters_follow_envoy_shapes() {
    let dir = TempDir::new("render");
    let store = StatsStore::open_or_create(&dir.config(), 0).unwrap();
    store.counter("cluster.b.upstream_rq_total").add(2);
    store.counter("cluster.a.upstream_rq_total");
    store.gauge("cluster.a.membership_total").set(0);
    store.histogram("cluster.a.upstream_rq_time").record(1);
    store.histogram("cluster.a.upstream_cx_length_ms");
    let snapshot = store.snapshot().unwrap();

    let text = snapshot.render_text(&RenderOptions::default());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        &lines[..4],
        &[
            "cluster.a.membership_total: 0",
            "cluster.a.upstream_rq_total: 0",
            "cluster.b.upstream_rq_total: 2",
            "server.stats_overflow: 0",
        ]
    );
    assert_eq!(
        lines[4],
        "cluster.a.upstream_cx_length_ms: No recorded values"
    );
    assert!(lines[5].starts_with("cluster.a.upstream_rq_time: P0(nan,0.5) P25(nan,0.625)"));
    assert!(
        lines[5].ends_with("P99.9(nan,0.9995) P100(nan,1)"),
        "{}",
        lines[5]
    );

    let used = snapshot.render_text(&RenderOptions::from_query("usedonly&filter=cluster").unwrap());
    assert_eq!(
        used,
        "cluster.a.membership_total: 0\ncluster.b.upstream_rq_total: 2\n\
         cluster.a.upstream_rq_time: P0(nan,0.5) P25(nan,0.625) P50(nan,0.75) P75(nan,0.875) \
         P90(nan,0.95) P95(nan,0.975) P99(nan,0.995) P99.5(nan,0.9975) P99.9(nan,0.9995) P100(nan,1)\n"
    );

    let json: serde_json::Value =
        serde_json::from_str(&snapshot.render_json(&RenderOptions::default())).unwrap();
    let stats = json["stats"].as_array().unwrap();
    assert_eq!(
        stats[0],
        serde_json::json!({"name": "cluster.a.membership_total", "value": 0})
    );
    let histograms = &stats.last().unwrap()["histograms"];
    assert_eq!(
        histograms["supported_quantiles"],
        serde_json::json!([0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100])
    );
    let empty = &histograms["computed_quantiles"][0];
    assert_eq!(empty["name"], "cluster.a.upstream_cx_length_ms");
    assert_eq!(
        empty["values"][0],
        serde_json::json!({"cumulative": null, "interval": null})
    );
    assert_eq!(
        histograms["computed_quantiles"][1]["values"][9]["cumulative"],
        1
    );
    let none = snapshot.render_json(&RenderOptions::from_query("filter=nomatch").unwrap());
    assert_eq!(none, "{\"stats\":[]}");
}

#[test]
fn supervisor_owner_keeps_region_in_use_without_a_generation_slot() {
    let dir = TempDir::new("owner");
    let config = dir.config();
    let owner = baton_shared_stats::RegionOwner::open_or_create(&config).unwrap();
    assert!(owner.generations().is_empty());
    {
        let generation = StatsStore::open_or_create(&config, 0).unwrap();
        generation.counter("cluster.a.upstream_rq_total").add(4);
        assert_eq!(owner.generations().len(), 1);
    }
    // The generation exited; its counters stay, and the owner sees them.
    let snapshot = owner.snapshot().unwrap();
    assert_eq!(snapshot.value("cluster.a.upstream_rq_total"), Some(4));
    assert!(owner.generations().is_empty());
    // While the owner holds it, an incompatible region is reported, never replaced.
    patch(owner.path(), 8, &(LAYOUT_VERSION + 1).to_le_bytes());
    let err = StatsStore::open_or_create(&config, 1).err().unwrap();
    assert!(matches!(err, StatsError::InUse { .. }), "{err}");
}

#[test]
fn histogram_interval_figures_cover_the_last_flush_interval() {
    let dir = TempDir::new("interval");
    let config = dir.config();
    let store = StatsStore::open_or_create(&config, 0).unwrap();
    let other_generation = StatsStore::open_or_create(&config, 1).unwrap();
    let rq_time = store.histogram("http.ingress.downstream_rq_time");
    rq_time.record(1);
    let options = RenderOptions::default();
    // Before the first flush: no interval figures, like Envoy.
    let text = store.snapshot().unwrap().render_text(&options);
    assert!(text.contains("downstream_rq_time: P0(nan,0.5) "), "{text}");

    store.flush_histogram_intervals().unwrap();
    other_generation
        .histogram("http.ingress.downstream_rq_time")
        .record(1);
    rq_time.record(1);
    store.flush_histogram_intervals().unwrap();
    let snapshot = store.snapshot().unwrap();
    let histogram = snapshot
        .histogram("http.ingress.downstream_rq_time")
        .unwrap();
    assert_eq!(histogram.count(), 3);
    let interval = histogram.interval_bucket_counts.unwrap();
    assert_eq!(
        interval.iter().sum::<u64>(),
        2,
        "both generations' records since the last flush"
    );
    assert!(snapshot
        .render_text(&options)
        .contains("downstream_rq_time: P0(0.5,0.5) P25(0.625,0.625)"));

    // An interval with no records prints nan again, while cumulative stays.
    store.flush_histogram_intervals().unwrap();
    let snapshot = store.snapshot().unwrap();
    assert!(snapshot.render_text(&options).contains("P100(nan,1)"));
    let json: serde_json::Value = serde_json::from_str(&snapshot.render_json(&options)).unwrap();
    let values = &json["stats"].as_array().unwrap().last().unwrap()["histograms"]
        ["computed_quantiles"][0]["values"];
    assert_eq!(
        values[9],
        serde_json::json!({"cumulative": 1, "interval": null})
    );
}

#[test]
fn fresh_open_replaces_an_unheld_region_and_shares_a_held_one() {
    let dir = TempDir::new("fresh");
    let config = dir.config();
    let first = StatsStore::open_or_create(&config, 0).unwrap();
    first.counter("old.name").add(5);
    drop(first);
    // Nobody holds it: a fresh start sees neither the value nor the name.
    let (fresh, in_use) = StatsStore::open_fresh(&config, 0).unwrap();
    assert!(!in_use);
    assert_eq!(fresh.snapshot().unwrap().value("old.name"), None);
    fresh.counter("new.name").add(2);
    // While `fresh` holds it, another fresh start joins and says so.
    let (second, in_use) = StatsStore::open_fresh(&config, 0).unwrap();
    assert!(in_use);
    assert_eq!(second.snapshot().unwrap().value("new.name"), Some(2));
}
