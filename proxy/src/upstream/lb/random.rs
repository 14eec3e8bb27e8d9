//! RANDOM: a uniformly random host, weighted by `load_balancing_weight`.

use super::HostGroup;

pub(super) fn pick(group: &HostGroup) -> usize {
    group.random_index()
}
