//! A connection's header names from its last heads, reused for the next head's names
//! when they are spelt the same (issues 16 and 17).
//!
//! A client, and an upstream, send the same header names in the same order on every
//! request or response of a connection. `HeaderName::from_bytes` lowercases and looks
//! each name up (and allocates one that is not a standard name); here a name at the
//! same position as last time, with the very same bytes, is a clone of last time's
//! parsed name instead: one comparison. Only names that parsed are kept, so a reused
//! name is exactly what parsing those bytes gives.

use http::header::HeaderName;

/// How many leading header lines of a head are remembered (a head's usual names).
const REMEMBERED_NAMES: usize = 24;

/// Names longer than this are parsed each time (their spelling is not kept).
const LONGEST_REMEMBERED_NAME: usize = 64;

/// One remembered line: the name's bytes as sent and what they parsed to.
#[derive(Debug)]
struct Remembered {
    spelling: Vec<u8>,
    name: HeaderName,
}

/// One connection's (or one direction's) last header names, by position in the head.
#[derive(Debug, Default)]
pub(crate) struct HeaderNameCache {
    lines: Vec<Remembered>,
}

impl HeaderNameCache {
    /// The name of the head's header line number `position`, spelt `spelling`; None
    /// where `HeaderName::from_bytes` refuses it.
    pub(crate) fn name(&mut self, position: usize, spelling: &[u8]) -> Option<HeaderName> {
        if let Some(line) = self.lines.get_mut(position) {
            if same_spelling(&line.spelling, spelling) {
                return Some(line.name.clone());
            }
            let name = HeaderName::from_bytes(spelling).ok()?;
            if spelling.len() <= LONGEST_REMEMBERED_NAME {
                line.spelling.clear();
                line.spelling.extend_from_slice(spelling);
                line.name = name.clone();
            }
            return Some(name);
        }
        let name = HeaderName::from_bytes(spelling).ok()?;
        // Lines are remembered in order: a position is kept only once those before it
        // are (a head longer than the last one adds its next line).
        if position == self.lines.len()
            && position < REMEMBERED_NAMES
            && spelling.len() <= LONGEST_REMEMBERED_NAME
        {
            self.lines.push(Remembered {
                spelling: spelling.to_vec(),
                name: name.clone(),
            });
        }
        Some(name)
    }
}

/// `a == b`, without a `memcmp` call for the usual name of 4 to 16 bytes (two
/// overlapping word loads from each end compare every byte).
#[inline]
fn same_spelling(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let n = a.len();
    let word = |s: &[u8], at: usize| -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_ne_bytes(w)
    };
    let half = |s: &[u8], at: usize| -> u32 {
        let mut w = [0u8; 4];
        w.copy_from_slice(&s[at..at + 4]);
        u32::from_ne_bytes(w)
    };
    match n {
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_what_parsing_gives_whether_remembered_or_not() {
        let mut cache = HeaderNameCache::default();
        for _ in 0..3 {
            for (i, spelling) in ["Host", "X-Custom-Thing", "content-length", "ACCEPT"]
                .iter()
                .enumerate()
            {
                let expected = HeaderName::from_bytes(spelling.as_bytes()).ok();
                assert_eq!(cache.name(i, spelling.as_bytes()), expected);
            }
        }
    }

    #[test]
    fn same_spelling_is_byte_equality() {
        let texts: Vec<Vec<u8>> = (0..=20)
            .flat_map(|n| {
                let base: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
                let mut variants = vec![base.clone()];
                for at in 0..n {
                    let mut v = base.clone();
                    v[at] = b'-';
                    variants.push(v);
                }
                variants
            })
            .collect();
        for a in &texts {
            for b in &texts {
                assert_eq!(same_spelling(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn a_different_spelling_at_a_position_is_parsed_again() {
        let mut cache = HeaderNameCache::default();
        assert_eq!(cache.name(0, b"Host").unwrap(), "host");
        assert_eq!(cache.name(0, b"X-Other").unwrap(), "x-other");
        assert_eq!(cache.name(0, b"HOST").unwrap(), "host");
        assert_eq!(cache.name(0, b"X-Other").unwrap(), "x-other");
    }

    #[test]
    fn refused_names_are_refused_every_time() {
        let mut cache = HeaderNameCache::default();
        assert!(cache.name(0, b"bad name").is_none());
        assert!(cache.name(0, b"bad name").is_none());
        assert_eq!(cache.name(0, b"good").unwrap(), "good");
        assert!(cache.name(0, b"bad name").is_none());
    }

    #[test]
    fn only_leading_lines_and_short_names_are_kept() {
        let mut cache = HeaderNameCache::default();
        // Position 3 before 0..3: parsed, not kept.
        assert_eq!(cache.name(3, b"A").unwrap(), "a");
        assert!(cache.lines.is_empty());
        let long = vec![b'x'; LONGEST_REMEMBERED_NAME + 1];
        assert_eq!(cache.name(0, &long).unwrap().as_str().len(), long.len());
        assert!(cache.lines.is_empty());
        for i in 0..REMEMBERED_NAMES + 2 {
            assert!(cache.name(i, b"n").is_some());
        }
        assert_eq!(cache.lines.len(), REMEMBERED_NAMES);
    }
}
