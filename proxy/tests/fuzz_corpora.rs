//! Replays every file of `fuzz/corpus/<target>/` through its fuzzing entry point
//! (`baton_proxy::fuzzing`) on the stable toolchain, so a crash found by cargo-fuzz (or by
//! the mutator below) and added to the corpus stays fixed. The ignored tests write the
//! generated seeds (hot-restart messages, stats regions) and run a seeded random mutator
//! over the corpora for local fuzzing without nightly:
//! `BATON_FUZZ_ITERATIONS=200000 cargo test -p baton-proxy --test fuzz_corpora -- --ignored mutate_corpora`.

use std::path::{Path, PathBuf};

use baton_proxy::fuzzing::TARGETS;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(corpus_dir(target))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| Some((e.path(), std::fs::read(e.path()).ok()?)))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn every_corpus_file_runs_without_a_panic() {
    for (target, entry) in TARGETS {
        let files = corpus(target);
        // Regions are 48 KiB at least: a handful of shapes, the mutator does the rest.
        let minimum = if *target == "stats_region" { 5 } else { 20 };
        assert!(
            files.len() >= minimum,
            "corpus {target} has only {} seeds",
            files.len()
        );
        for (path, bytes) in files {
            let outcome = std::panic::catch_unwind(|| entry(&bytes));
            assert!(outcome.is_ok(), "{target}: {} panicked", path.display());
        }
    }
}

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One mutation: flips, interesting bytes, inserted or removed runs, a splice with
/// another seed, or truncation.
fn mutate(input: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(7) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = [0, 0xff, 0x7f, 0x80, b'\n', b'\r', b':', b'{', b'-'][rng.below(9)];
            }
            2 => {
                let run: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
                out.splice(at..at, run);
            }
            3 if at < out.len() => {
                let end = (at + 1 + rng.below(32)).min(out.len());
                out.drain(at..end);
            }
            4 if !other.is_empty() => {
                let from = rng.below(other.len());
                let end = (from + 1 + rng.below(64)).min(other.len());
                out.splice(at..at, other[from..end].iter().copied());
            }
            5 => out.truncate(at),
            _ => {
                if let Some(i) = (!out.is_empty()).then(|| rng.below(out.len())) {
                    let repeat = out[i..(i + 1 + rng.below(8)).min(out.len())].to_vec();
                    out.splice(i..i, repeat);
                }
            }
        }
    }
    out
}

#[test]
#[ignore]
fn mutate_corpora() {
    let iterations: u64 = std::env::var("BATON_FUZZ_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let seed: u64 = std::env::var("BATON_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0ba7_0f22);
    let only = std::env::var("BATON_FUZZ_TARGET").ok();
    let mut rng = Rng(seed | 1);
    for (target, entry) in TARGETS {
        if only.as_deref().is_some_and(|o| o != *target) {
            continue;
        }
        let seeds: Vec<Vec<u8>> = corpus(target).into_iter().map(|(_, b)| b).collect();
        // Region attaches touch the file system: fewer of them.
        let runs = if *target == "stats_region" {
            iterations / 10
        } else {
            iterations
        };
        for iteration in 0..runs {
            let base = &seeds[rng.below(seeds.len())];
            let other = &seeds[rng.below(seeds.len())];
            let input = mutate(base, other, &mut rng);
            if std::panic::catch_unwind(|| entry(&input)).is_err() {
                let path = corpus_dir(target).join(format!("crash-{seed}-{iteration}"));
                let _ = std::fs::write(&path, &input);
                panic!(
                    "{target}: seed {seed} iteration {iteration} panicked; input saved to {}",
                    path.display()
                );
            }
        }
        eprintln!("{target}: {runs} mutated inputs, no panic");
    }
}

/// Writes the generated seeds: hot-restart requests and replies as the real encoder
/// frames them, and stats regions of a few shapes.
#[test]
#[ignore]
fn write_generated_seeds() {
    use baton_proto::pb::baton::hot_restart::v1 as pb;
    use prost::Message;
    let dir = corpus_dir("hot_restart_message");
    std::fs::create_dir_all(&dir).expect("corpus dir");
    let requests = [
        pb::request::Kind::Hello(pb::Hello {
            protocol_version: 1,
            stats_layout_version: 1,
            child_epoch: 1,
            child_pid: 42,
            child_version: "1.0".into(),
        }),
        pb::request::Kind::PassListenSocket(pb::PassListenSocket {
            address: "127.0.0.1:8080".into(),
            ..Default::default()
        }),
        pb::request::Kind::ShutdownAdmin(pb::ShutdownAdmin {
            address: "127.0.0.1:9901".into(),
        }),
        pb::request::Kind::DrainListeners(pb::DrainListeners {}),
        pb::request::Kind::Terminate(pb::Terminate {}),
        pb::request::Kind::Stats(pb::Stats {}),
        pb::request::Kind::XdsResources(pb::XdsResources {
            fingerprint: "abc".into(),
            chunk: 3,
        }),
    ];
    let mut all = Vec::new();
    for (i, kind) in requests.into_iter().enumerate() {
        let bytes = pb::Request { kind: Some(kind) }.encode_length_delimited_to_vec();
        all.extend_from_slice(&bytes);
        std::fs::write(dir.join(format!("request-{i}")), &bytes).expect("write");
    }
    std::fs::write(dir.join("requests-all"), &all).expect("write");
    let replies = [
        pb::reply::Kind::Hello(pb::HelloReply {
            protocol_version: 1,
            stats_layout_version: 1,
            parent_epoch: 0,
            parent_pid: 7,
            parent_state: "LIVE".into(),
            parent_version: "1.0".into(),
            features: vec!["xds_resources".into()],
        }),
        pb::reply::Kind::PassListenSocket(pb::PassListenSocketReply { found: true }),
        pb::reply::Kind::ShutdownAdmin(pb::ShutdownAdminReply {
            original_start_time_unix: 1_700_000_000,
            hot_restart_generation: 3,
            socket_passed: true,
        }),
        pb::reply::Kind::Ack(pb::Ack {}),
        pb::reply::Kind::Error(pb::Error {
            message: "no".into(),
        }),
        pb::reply::Kind::Stats(pb::StatsReply {
            parent_connections: 12,
        }),
        pb::reply::Kind::XdsResources(pb::XdsResourcesReply {
            available: true,
            data: vec![0xab; 300],
            more: true,
        }),
    ];
    for (i, kind) in replies.into_iter().enumerate() {
        let bytes = pb::Reply { kind: Some(kind) }.encode_length_delimited_to_vec();
        std::fs::write(dir.join(format!("reply-{i}")), &bytes).expect("write");
    }
    let odd: [(&str, &[u8]); 8] = [
        ("empty", b""),
        ("len-only", &[5]),
        ("len-max", &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ("len-over-bound", &[0x81, 0x80, 0x04, 1]),
        ("varint-overlong", &[0xff; 11]),
        ("zero-len", &[0, 0, 0]),
        ("bad-wire-type", &[3, 0x0f, 0xff, 0xff]),
        ("nested-garbage", &[6, 0x0a, 4, 0x0a, 2, 0x08, 0xff]),
    ];
    for (name, bytes) in odd {
        std::fs::write(dir.join(name), bytes).expect("write");
    }

    let dir = corpus_dir("stats_region");
    std::fs::create_dir_all(&dir).expect("corpus dir");
    let scratch = std::env::temp_dir().join(format!("baton-seed-regions-{}", std::process::id()));
    for (i, (max_stats, names)) in [(16u32, 0usize), (16, 20), (64, 10), (64, 64), (128, 40)]
        .into_iter()
        .enumerate()
    {
        let _ = std::fs::remove_dir_all(&scratch);
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&scratch)
                .expect("scratch");
        }
        let config = baton_proxy::stats::region_config(&scratch, 1, max_stats);
        let store = baton_shared_stats::StatsStore::open_or_create(&config, 0).expect("region");
        for n in 0..names {
            match n % 3 {
                0 => store
                    .counter(&format!("cluster.c{n}.upstream_rq"))
                    .add(n as u64),
                1 => store.gauge(&format!("listener.l{n}.active")).set(n as u64),
                _ => store
                    .histogram(&format!("cluster.c{n}.rq_time"))
                    .record(n as u64 * 7),
            }
        }
        let bytes = std::fs::read(store.path()).expect("read region");
        std::fs::write(dir.join(format!("region-{i}")), &bytes).expect("write");
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
