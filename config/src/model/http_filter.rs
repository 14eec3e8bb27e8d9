//! HTTP filters of a connection manager (`http_filters`) and their per-route overrides
//! (`typed_per_filter_config`). Only filters Baton implements reach the model: an
//! unknown filter is a config error unless it is marked optional, in which case
//! translation leaves it out (Envoy's `is_optional`). The router, always last, is
//! `HttpConnectionManager::router`.

/// One `http_filters[]` entry before the router.
#[derive(Debug, Clone)]
pub struct HttpFilter {
    /// `name`: per-route overrides (`typed_per_filter_config`) are keyed by it.
    pub name: String,
    /// The filter and its `typed_config`.
    pub kind: HttpFilterKind,
    /// `disabled`: the filter runs only on routes that enable it with a per-route
    /// config of its own.
    pub disabled: bool,
    /// `is_optional` as configured. A filter Baton implements runs either way; the flag
    /// only decided whether an unimplemented one was skipped instead of refused.
    pub is_optional: bool,
}

/// The filters Baton implements, each with its translated `typed_config`. New filters
/// add a variant here, a translation arm in `translate::http_filter`, and a factory arm
/// in the proxy's filter chain builder.
#[derive(Debug, Clone)]
pub enum HttpFilterKind {}

/// Per-route overrides of HTTP filters, from `typed_per_filter_config` at route config,
/// virtual host, route or weighted-cluster level. Usually empty, so lookups are a scan of
/// a short list and never allocate.
#[derive(Debug, Clone, Default)]
pub struct FilterOverrides {
    entries: Vec<(String, FilterOverride)>,
}

impl FilterOverrides {
    /// Adds (or replaces) the override of `filter_name`.
    pub fn set(&mut self, filter_name: impl Into<String>, value: FilterOverride) {
        let filter_name = filter_name.into();
        match self.entries.iter_mut().find(|(n, _)| *n == filter_name) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((filter_name, value)),
        }
    }

    /// The override of the filter named `filter_name`, if this level has one.
    pub fn get(&self, filter_name: &str) -> Option<&FilterOverride> {
        if self.entries.is_empty() {
            return None;
        }
        self.entries
            .iter()
            .find(|(n, _)| n == filter_name)
            .map(|(_, v)| v)
    }

    /// No overrides at this level.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// What a `typed_per_filter_config` entry does to one filter.
#[derive(Debug, Clone)]
pub enum FilterOverride {
    /// `FilterConfig { disabled: true }`: the filter does not run on requests whose first
    /// selected route (or its virtual host, or route config) says so.
    Disabled,
    /// A per-route config for the filter; this also enables a filter that is `disabled`
    /// by default.
    Config(RouteFilterConfig),
}

/// Per-route configs of filters Baton implements (one variant per filter that has
/// one). None do yet, so every per-route config is refused unless optional.
#[derive(Debug, Clone)]
pub enum RouteFilterConfig {}
