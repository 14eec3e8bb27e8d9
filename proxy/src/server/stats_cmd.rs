//! `baton stats`: prints a stats region without any proxy running (offline reader for
//! debugging a dead service): `baton stats --base-id N [--runtime-dir D]
//! [--format text|json|prometheus] [--filter REGEX] [--usedonly] [--generations]`.

use std::path::PathBuf;

use baton_shared_stats::{RenderOptions, StatsReader};
use clap::{Parser, ValueEnum};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatsFormat {
    /// Envoy's /stats text
    Text,
    /// Envoy's /stats?format=json
    Json,
    /// Envoy's /stats/prometheus
    Prometheus,
}

/// `baton stats` arguments.
#[derive(Debug, Parser)]
#[command(
    name = "baton stats",
    about = "Print a Baton stats region (no proxy needed)"
)]
pub struct StatsArgs {
    /// The service's --base-id.
    #[arg(long = "base-id", default_value_t = 0)]
    pub base_id: u32,
    /// Runtime directory holding the region (same default as baton's).
    #[arg(long = "runtime-dir")]
    pub runtime_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long = "format", value_enum, default_value = "text")]
    pub format: StatsFormat,
    /// Only stats whose name matches this regex.
    #[arg(long = "filter")]
    pub filter: Option<String>,
    /// Only stats that were ever written.
    #[arg(long = "usedonly")]
    pub used_only: bool,
    /// Also list the generation slots (pid, epoch, alive).
    #[arg(long = "generations")]
    pub generations: bool,
}

/// Runs `baton stats`; returns the exit code.
pub fn run(args: &[String]) -> anyhow::Result<u8> {
    let args = match StatsArgs::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let code = u8::from(e.use_stderr());
            let _ = e.print();
            return Ok(code);
        }
    };
    let dir = super::runtime_dir::resolve(args.runtime_dir.as_deref());
    let reader = StatsReader::open(&dir, args.base_id)
        .map_err(|e| anyhow::anyhow!("cannot read stats region in {}: {e}", dir.display()))?;
    let mut options = RenderOptions::default();
    if let Some(f) = &args.filter {
        options.filter = Some(regex::Regex::new(f).map_err(|e| anyhow::anyhow!("--filter: {e}"))?);
    }
    options.used_only = args.used_only;
    if args.generations {
        for g in reader.generations() {
            println!(
                "# generation slot {} pid {} epoch {} {}",
                g.slot,
                g.pid,
                g.epoch,
                if g.alive { "alive" } else { "dead" }
            );
        }
    }
    let snapshot = reader.snapshot().map_err(|e| {
        anyhow::anyhow!("cannot read stats region {}: {e}", reader.path().display())
    })?;
    let out = match args.format {
        StatsFormat::Text => snapshot.render_text(&options),
        StatsFormat::Json => snapshot.render_json(&options),
        StatsFormat::Prometheus => snapshot.render_prometheus(&options),
    };
    print!("{out}");
    Ok(0)
}
