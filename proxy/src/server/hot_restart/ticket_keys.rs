//! The session ticket keys hand-over (feature `ticket_keys`): the parent encodes its
//! generated keys (`tls::tickets::registry`) as a `TicketKeyState`, sent in chunks like
//! the xDS state; the child decodes them and seeds its own registry before it builds any
//! TLS context, so its unchanged contexts continue the parent's keys.

use baton_proto::pb::baton::hot_restart::v1 as pb;
use prost::Message;

use crate::tls::tickets::{ExportedKeys, GENERATED_KEY_LEN};

/// Bytes of key state per reply (well inside the codec's message bound).
pub const CHUNK: usize = 48 * 1024;

/// Bound on the key state a child accepts (about 100k contexts).
pub const MAX_STATE: usize = 16 * 1024 * 1024;

/// The parent's side: every generated key set, encoded.
pub fn encode(keys: &[ExportedKeys]) -> Vec<u8> {
    pb::TicketKeyState {
        sets: keys
            .iter()
            .map(|k| pb::TicketKeySet {
                config_digest: k.digest.to_vec(),
                current: k.current.to_vec(),
                previous: k.previous.map(|p| p.to_vec()).unwrap_or_default(),
                current_since_unix: k.current_since_unix,
            })
            .collect(),
    }
    .encode_to_vec()
}

/// The child's side: the key sets of a `TicketKeyState`; a malformed set is skipped
/// (that context starts with fresh keys).
pub fn decode(data: &[u8]) -> Result<Vec<ExportedKeys>, prost::DecodeError> {
    let state = pb::TicketKeyState::decode(data)?;
    Ok(state
        .sets
        .into_iter()
        .filter_map(|s| {
            let key = |b: &[u8]| <[u8; GENERATED_KEY_LEN]>::try_from(b).ok();
            Some(ExportedKeys {
                digest: <[u8; 32]>::try_from(s.config_digest.as_slice()).ok()?,
                current: key(&s.current)?,
                previous: if s.previous.is_empty() {
                    None
                } else {
                    Some(key(&s.previous)?)
                },
                current_since_unix: s.current_since_unix,
            })
        })
        .collect())
}

/// The child's step: takes the parent's keys into this process's registry (logged).
pub async fn take_over(link: &mut super::child::ParentLink) -> anyhow::Result<()> {
    match link.take_ticket_keys().await {
        Ok(0) => Ok(()),
        Ok(contexts) => {
            tracing::info!(contexts, "hot restart: took over session ticket keys");
            Ok(())
        }
        Err(e) => Err(anyhow::anyhow!("hot restart: {e}")),
    }
}

/// The reply carrying `chunk` of `data`.
pub fn chunk_reply(data: &[u8], chunk: u32) -> pb::TicketKeysReply {
    let start = (chunk as usize).saturating_mul(CHUNK).min(data.len());
    let end = (start + CHUNK).min(data.len());
    pb::TicketKeysReply {
        data: data[start..end].to_vec(),
        more: end < data.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_chunks() {
        let keys: Vec<ExportedKeys> = (0..3000u32)
            .map(|i| ExportedKeys {
                digest: [i as u8; 32],
                current: [1; GENERATED_KEY_LEN],
                previous: (i % 2 == 0).then_some([2; GENERATED_KEY_LEN]),
                current_since_unix: u64::from(i),
            })
            .collect();
        let data = encode(&keys);
        let mut joined = Vec::new();
        for chunk in 0u32.. {
            let r = chunk_reply(&data, chunk);
            joined.extend_from_slice(&r.data);
            if !r.more {
                break;
            }
        }
        assert!(data.len() > CHUNK);
        assert_eq!(decode(&joined).expect("decodes"), keys);
    }
}
