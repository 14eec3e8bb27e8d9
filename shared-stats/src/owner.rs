//! `RegionOwner`: what the supervisor holds. It creates the region before the first
//! generation starts and keeps it marked in use (shared `flock`) across generations, without
//! taking a generation slot itself.

use std::path::Path;

use crate::error::Result;
use crate::region::{GenerationInfo, Region, RegionConfig};
use crate::snapshot::{collect, StatsSnapshot};

/// Keeps a region open (and therefore never replaced) without joining it as a generation.
pub struct RegionOwner {
    region: Region,
    config: RegionConfig,
}

impl RegionOwner {
    /// Creates the region if missing (or replaces an unusable, unused one) and holds it.
    pub fn open_or_create(config: &RegionConfig) -> Result<Self> {
        Ok(RegionOwner {
            region: Region::open_or_create(config)?,
            config: config.clone(),
        })
    }

    /// The region file.
    pub fn path(&self) -> &Path {
        self.region.path()
    }

    /// Generation slots in use and whether their processes still run.
    pub fn generations(&self) -> Vec<GenerationInfo> {
        self.region.generations()
    }

    /// Folds generations whose process died; returns how many.
    pub fn reap_dead_generations(&self) -> Result<usize> {
        let lock = self.region.lock(self.config.lock_timeout)?;
        Ok(self.region.reap_dead(&lock))
    }

    /// All stats of all generations (after folding dead ones, best effort).
    pub fn snapshot(&self) -> Result<StatsSnapshot> {
        let _ = self.reap_dead_generations();
        let entries = self.region.read_entries(0)?;
        Ok(collect(&self.region, &entries))
    }
}
