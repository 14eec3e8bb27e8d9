//! `layered_runtime` as Baton keeps it: each layer's name and, for a static layer, its
//! values flattened to dotted keys (admin `/runtime` shows them; Baton acts only on the
//! xDS-TP federation flag, read at startup).

/// One `layered_runtime` layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeLayer {
    /// `name`
    pub name: String,
    /// What it holds.
    pub kind: RuntimeLayerKind,
}

/// The kind of a runtime layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeLayerKind {
    /// `static_layer`: (dotted key, value) sorted by key.
    Static(Vec<(String, String)>),
    /// `admin_layer`: what `/runtime_modify` would set (nothing: Baton has no
    /// `/runtime_modify`).
    Admin,
}

impl super::Bootstrap {
    /// Every key the static runtime layers set, in layer order.
    pub fn runtime_keys(&self) -> Vec<&str> {
        self.runtime_layers
            .iter()
            .filter_map(|l| match &l.kind {
                RuntimeLayerKind::Static(values) => Some(values),
                RuntimeLayerKind::Admin => None,
            })
            .flatten()
            .map(|(k, _)| k.as_str())
            .collect()
    }
}
