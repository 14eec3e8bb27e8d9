//! The shared-memory stats region every proxy generation maps (issue 4).
//!
//! A supervisor (or a lone `baton`) creates one region file per `--base-id` in the runtime
//! directory; each generation joins it with [`StatsStore::open_or_create`], resolves its
//! stat names once into [`Counter`], [`Gauge`] and [`Histogram`] handles, and from then on
//! updates them with relaxed atomic adds into its own value column. Counters survive
//! reloads and crashes (a dead generation's column is folded into a retired column exactly
//! once); gauges count live generations only. Rendering follows Envoy's admin output:
//! [`render::render_text`], [`render::render_json`] and [`render::render_prometheus`].
//! [`RegionOwner`] is what a supervisor holds to create the region and keep it in use
//! between generations. [`StatsReader`] reads a region offline. See README.md for the byte layout.
//!
//! ```no_run
//! use baton_shared_stats::{RegionConfig, RenderOptions, StatsStore};
//! let config = RegionConfig::new("/run/baton", 0);
//! let store = StatsStore::open_or_create(&config, 0)?;
//! let requests = store.counter("cluster.backend.upstream_rq_total");
//! requests.inc();
//! store.gauge("server.live").set(1);
//! store.histogram("cluster.backend.upstream_rq_time").record(12);
//! let text = store.snapshot()?.render_text(&RenderOptions::default());
//! # Ok::<(), baton_shared_stats::StatsError>(())
//! ```

mod block;
mod error;
pub mod histogram;
mod layout;
mod mapping;
mod name_index;
mod owner;
mod process;
mod region;
pub mod render;
mod scope_lease;
mod snapshot;
mod store;
#[doc(hidden)]
pub mod testing;
mod text_readout;

pub use block::{BlockTemplate, BlockTemplateBuilder};
pub use error::{AllocError, Result, StatsError};
pub use histogram::HistogramSnapshot;
pub use layout::LAYOUT_VERSION;
pub use owner::RegionOwner;
pub use process::ProcessIdentity;
pub use region::{region_path, GenerationInfo, RegionConfig, OVERFLOW_STAT};
pub use render::{ExportFilter, RenderOptions};
pub use scope_lease::ScopeLease;
pub use snapshot::{StatKind, StatValue, StatsReader, StatsSnapshot};
pub use store::{Counter, Gauge, GaugeMode, Histogram, StatBlock, StatsBatch, StatsStore};
pub use text_readout::{TextReadout, TextReadoutValue};
