//! What a generation hands its successor over the hot-restart socket: every xDS resource
//! it accepted, by type, with versions ([`AcceptedState`]), and what the successor does
//! with it ([`Inherited`]).
//!
//! Beyond Envoy: when the control plane cannot be reached while a new generation
//! initialises (or does not answer within `initial_fetch_timeout`), the new generation
//! applies its parent's accepted resources through the same handlers (so they are
//! validated like fresh ones), counts them in `control_plane.inherited_resources`, and
//! subscribes with their versions; when the control plane comes back it converges as
//! usual. When the control plane answers, inherited resources are not used at all, and
//! the new generation behaves exactly as Envoy's.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use baton_proto::pb::baton::hot_restart::v1 as pb;
use prost::Message;

use super::{Resource, Update};

#[derive(Debug, Default, Clone)]
struct TypeState {
    version_info: String,
    /// name -> (version, resource)
    resources: BTreeMap<String, (String, Arc<prost_types::Any>)>,
}

/// The resources this generation accepted, kept current as updates are ACKed.
#[derive(Debug, Default)]
pub struct AcceptedState {
    types: Mutex<HashMap<String, TypeState>>,
}

impl AcceptedState {
    /// Records an accepted update of `type_url`.
    pub(crate) fn record(&self, type_url: &str, update: &Update) {
        let mut types = self.types.lock().unwrap_or_else(|e| e.into_inner());
        let state = types.entry(type_url.to_string()).or_default();
        if update.state_of_the_world {
            state.resources.clear();
        }
        for r in &update.resources {
            state
                .resources
                .insert(r.name.clone(), (r.version.clone(), r.any.clone()));
        }
        for name in &update.removed {
            state.resources.remove(name);
        }
        state.version_info.clone_from(&update.version_info);
    }

    /// The whole state, encoded for the hot-restart socket (None when empty).
    pub fn encode(&self) -> Option<Vec<u8>> {
        let types = self.types.lock().unwrap_or_else(|e| e.into_inner());
        if types.is_empty() {
            return None;
        }
        let msg = pb::XdsState {
            types: types
                .iter()
                .map(|(type_url, t)| pb::XdsTypeState {
                    type_url: type_url.clone(),
                    version_info: t.version_info.clone(),
                    resources: t
                        .resources
                        .iter()
                        .map(|(name, (version, any))| pb::XdsResource {
                            name: name.clone(),
                            version: version.clone(),
                            resource: Some((**any).clone()),
                        })
                        .collect(),
                })
                .collect(),
        };
        Some(msg.encode_to_vec())
    }
}

/// A parent's state, as the child received it: one update per type, taken once.
#[derive(Debug, Default)]
pub struct Inherited {
    types: Mutex<HashMap<String, Update>>,
}

impl Inherited {
    /// Decodes what the parent sent.
    pub fn decode(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        let state = pb::XdsState::decode(bytes)?;
        let types = state
            .types
            .into_iter()
            .map(|t| {
                let update = Update {
                    version_info: t.version_info,
                    resources: t
                        .resources
                        .into_iter()
                        .filter_map(|r| {
                            Some(Resource {
                                name: r.name,
                                version: r.version,
                                any: Arc::new(r.resource?),
                            })
                        })
                        .collect(),
                    removed: Vec::new(),
                    state_of_the_world: true,
                };
                (t.type_url, update)
            })
            .collect();
        Ok(Self {
            types: Mutex::new(types),
        })
    }

    /// The inherited update of `type_url`, at most once.
    pub(crate) fn take(&self, type_url: &str) -> Option<Update> {
        self.types
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(type_url)
    }

    /// Number of inherited resources not used yet.
    pub fn len(&self) -> usize {
        self.types
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|u| u.resources.len())
            .sum()
    }

    /// True when nothing is left to inherit.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(name: &str, version: &str) -> Resource {
        Resource {
            name: name.into(),
            version: version.into(),
            any: Arc::new(prost_types::Any {
                type_url: "t".into(),
                value: name.as_bytes().to_vec(),
            }),
        }
    }

    #[test]
    fn accepted_state_round_trips_sotw_and_delta() {
        let state = AcceptedState::default();
        assert!(state.encode().is_none());
        state.record(
            "c",
            &Update {
                version_info: "1".into(),
                resources: vec![res("a", "1"), res("b", "1")],
                removed: vec![],
                state_of_the_world: true,
            },
        );
        state.record(
            "e",
            &Update {
                version_info: "".into(),
                resources: vec![res("x", "7")],
                removed: vec![],
                state_of_the_world: false,
            },
        );
        state.record(
            "e",
            &Update {
                version_info: "".into(),
                resources: vec![res("y", "8")],
                removed: vec!["x".into()],
                state_of_the_world: false,
            },
        );
        let inherited = Inherited::decode(&state.encode().expect("state")).expect("decode");
        assert_eq!(inherited.len(), 3);
        let c = inherited.take("c").expect("clusters");
        assert_eq!(c.version_info, "1");
        assert_eq!(c.resources.len(), 2);
        assert!(inherited.take("c").is_none(), "taken once");
        let e = inherited.take("e").expect("endpoints");
        assert_eq!(e.resources[0].name, "y");
        assert_eq!(e.resources[0].version, "8");
    }
}
