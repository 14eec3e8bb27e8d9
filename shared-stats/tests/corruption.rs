//! A region whose bytes were corrupted at random (seeded, many iterations) is attached,
//! read and written: the outcome is a clear error or a recovered region, never a panic
//! (every count read from the region is clamped, every index bounded).

mod support;

use baton_shared_stats::testing::exercise_region_bytes;
use baton_shared_stats::StatsStore;
use support::TempDir;

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

/// A small region with counters, gauges, histograms and blocks from two generations.
fn sample_region(dir: &TempDir) -> Vec<u8> {
    let mut config = baton_shared_stats::RegionConfig::new(&dir.0, 1);
    config.max_stats = 64;
    config.max_cells = 1024;
    config.name_arena_bytes = 4096;
    let first = StatsStore::open_or_create(&config, 0).expect("create");
    let second = StatsStore::open_or_create(&config, 1).expect("join");
    for i in 0..8 {
        first
            .counter(&format!("cluster.c{i}.upstream_rq"))
            .add(i + 1);
        second.gauge(&format!("listener.l{i}.active")).set(i);
    }
    let template = baton_shared_stats::testing::sample_template();
    for i in 0..3 {
        let block = first
            .block(&format!("cluster.b{i}."), &template)
            .expect("a block");
        block
            .counter(0, "upstream_rq_total")
            .expect("slot")
            .add(i + 1);
        block
            .histogram(2, "upstream_rq_time")
            .expect("slot")
            .record(5);
    }
    first.histogram("cluster.c0.upstream_rq_time").record(12);
    second.histogram("cluster.c0.upstream_rq_time").record(700);
    let bytes = std::fs::read(first.path()).expect("read region");
    drop((first, second));
    bytes
}

/// One corruption: random bytes overwritten, biased to the header and entry table where
/// counts and indices live, sometimes with extreme values.
fn corrupt(original: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut bytes = original.to_vec();
    let edits = 1 + rng.below(8);
    for _ in 0..edits {
        let span = match rng.below(4) {
            0 | 1 => bytes.len().min(4096),
            _ => bytes.len(),
        };
        let at = rng.below(span);
        let value: u8 = match rng.below(4) {
            0 => 0xff,
            1 => 0,
            _ => rng.next() as u8,
        };
        let run = 1 + rng.below(8);
        for b in bytes.iter_mut().skip(at).take(run) {
            *b = value;
        }
    }
    if rng.below(16) == 0 {
        let keep = rng.below(bytes.len());
        bytes.truncate(keep);
    }
    bytes
}

fn run(seed: u64, iterations: u32) {
    let source = TempDir::new("corrupt-src");
    let original = sample_region(&source);
    let mut rng = Rng(seed | 1);
    for iteration in 0..iterations {
        let dir = TempDir::new("corrupt");
        let bytes = corrupt(&original, &mut rng);
        let outcome = std::panic::catch_unwind(|| exercise_region_bytes(&dir.0, &bytes));
        if let Ok(Err(e)) = &outcome {
            // The last step replaces an unusable region, so errors are rare and clear.
            eprintln!("seed {seed} iteration {iteration}: {e}");
        }
        if outcome.is_err() {
            let keep = std::env::temp_dir().join(format!("baton-region-crash-{seed}-{iteration}"));
            let _ = std::fs::write(&keep, &bytes);
            panic!(
                "seed {seed} iteration {iteration} panicked (bytes in {})",
                keep.display()
            );
        }
    }
}

#[test]
fn corrupted_regions_never_panic() {
    run(0x5eed_0001, 400);
}

/// Longer local run: `cargo test -p baton-shared-stats --test corruption -- --ignored`.
#[test]
#[ignore]
fn corrupted_regions_never_panic_long() {
    let seed = std::env::var("BATON_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0xdead_beef);
    run(seed, 20_000);
}
