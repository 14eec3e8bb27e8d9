//! Filter-chain selection for an accepted connection, with Envoy's precedence: each
//! criterion in turn (destination port, destination IP, server name, transport protocol,
//! application protocols, source IP, source port) keeps the most specific chains that
//! match it, or, if none names a value that matches, the chains that leave it unset. No
//! chain left means the listener's `default_filter_chain` (or the connection is closed).

use std::net::IpAddr;
use std::sync::Arc;

use baton_config::model::{CidrRange, FilterChain, Listener};

use crate::base::conn_info::ConnInfo;

/// What is known about a connection when its chain is chosen.
#[derive(Debug, Clone, Copy)]
pub struct MatchInput<'a> {
    /// Connection facts.
    pub conn: &'a ConnInfo,
    /// `raw_buffer` or `tls` (from the TLS inspector).
    pub transport_protocol: &'a str,
    /// ALPN protocols the client offers (from the TLS inspector).
    pub application_protocols: &'a [Vec<u8>],
}

/// Which chain a connection gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectedChain {
    /// `filter_chains[i]`
    Index(usize),
    /// `default_filter_chain`
    Default,
}

/// Chooses the filter chain for a connection.
pub fn select_filter_chain<'l>(
    listener: &'l Listener,
    input: MatchInput<'_>,
) -> Option<&'l Arc<FilterChain>> {
    match select_filter_chain_index(listener, input)? {
        SelectedChain::Index(i) => listener.filter_chains.get(i),
        SelectedChain::Default => listener.default_filter_chain.as_ref(),
    }
}

/// Chooses the filter chain for a connection, by position.
pub fn select_filter_chain_index(
    listener: &Listener,
    input: MatchInput<'_>,
) -> Option<SelectedChain> {
    let mut candidates: Vec<(usize, &Arc<FilterChain>)> =
        listener.filter_chains.iter().enumerate().collect();
    let conn = input.conn;
    let dst_port = conn.local.port();
    let dst_ip = conn.local.ip();
    let src_ip = conn.remote.ip();
    let src_port = conn.remote.port();
    // Lower-cased once, and only when a chain matches on server names.
    let sni = listener
        .filter_chains
        .iter()
        .any(|c| !c.matcher.server_names.is_empty())
        .then(|| conn.server_name.as_deref().map(str::to_ascii_lowercase))
        .flatten();

    narrow(&mut candidates, |c| {
        c.matcher
            .destination_port
            .map(|p| if p == dst_port { Some(1) } else { None })
    });
    narrow(&mut candidates, |c| {
        prefix_specificity(&c.matcher.prefix_ranges, dst_ip)
    });
    narrow(&mut candidates, |c| {
        if c.matcher.server_names.is_empty() {
            return None;
        }
        Some(
            sni.as_deref()
                .and_then(|s| server_name_specificity(&c.matcher.server_names, s)),
        )
    });
    narrow(&mut candidates, |c| {
        c.matcher
            .transport_protocol
            .as_deref()
            .map(|t| (t == input.transport_protocol).then_some(1))
    });
    narrow(&mut candidates, |c| {
        if c.matcher.application_protocols.is_empty() {
            return None;
        }
        Some(
            input
                .application_protocols
                .iter()
                .any(|offered| {
                    c.matcher
                        .application_protocols
                        .iter()
                        .any(|p| p.as_bytes() == offered.as_slice())
                })
                .then_some(1),
        )
    });
    narrow(&mut candidates, |c| {
        prefix_specificity(&c.matcher.source_prefix_ranges, src_ip)
    });
    narrow(&mut candidates, |c| {
        if c.matcher.source_ports.is_empty() {
            None
        } else {
            Some(c.matcher.source_ports.contains(&src_port).then_some(1))
        }
    });
    match candidates.first() {
        Some((i, _)) => Some(SelectedChain::Index(*i)),
        None => listener
            .default_filter_chain
            .as_ref()
            .map(|_| SelectedChain::Default),
    }
}

/// Keeps the candidates that match one criterion most specifically. `rank` returns
/// `None` when the chain leaves the criterion unset, `Some(None)` when it sets it and
/// the connection does not match, `Some(Some(n))` for a match of specificity `n`.
/// `rank` is cheap and pure, so it runs twice per candidate rather than its results
/// being collected: this runs for every accepted connection.
fn narrow<F>(candidates: &mut Vec<(usize, &Arc<FilterChain>)>, rank: F)
where
    F: Fn(&FilterChain) -> Option<Option<u32>>,
{
    let best = candidates
        .iter()
        .filter_map(|(_, c)| rank(c).flatten())
        .max();
    match best {
        Some(best) => candidates.retain(|(_, c)| rank(c) == Some(Some(best))),
        None => candidates.retain(|(_, c)| rank(c).is_none()),
    }
}

fn prefix_specificity(ranges: &[CidrRange], ip: IpAddr) -> Option<Option<u32>> {
    if ranges.is_empty() {
        return None;
    }
    Some(
        ranges
            .iter()
            .filter(|r| cidr_contains(r, ip))
            .map(|r| u32::from(r.len) + 1)
            .max(),
    )
}

/// True when `ip` is inside `range` (v4-mapped v6 addresses compare as v4).
pub fn cidr_contains(range: &CidrRange, ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (range.addr, ip) {
        (IpAddr::V4(net), IpAddr::V4(ip)) => {
            let len = u32::from(range.len.min(32));
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(net) & mask == u32::from(ip) & mask
        }
        (IpAddr::V6(net), IpAddr::V6(ip)) => {
            let len = u32::from(range.len.min(128));
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(net) & mask == u128::from(ip) & mask
        }
        _ => false,
    }
}

/// Exact names beat wildcards; longer wildcard suffixes beat shorter ones.
fn server_name_specificity(names: &[String], sni: &str) -> Option<u32> {
    names
        .iter()
        .filter_map(|n| {
            if n == sni {
                Some(u32::MAX)
            } else if let Some(suffix) = n.strip_prefix('*') {
                (sni.len() > suffix.len() && sni.ends_with(suffix))
                    .then(|| u32::try_from(suffix.len()).unwrap_or(u32::MAX - 1))
            } else {
                None
            }
        })
        .max()
}

#[cfg(test)]
mod tests;
