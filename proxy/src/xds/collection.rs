//! xDS-TP collections on a stream: which resources of a response are members of the
//! collection a CDS / LDS subscription names, as Envoy 1.40's watch map decides.

use super::stream::Response;

/// Drops from `resp` what is not a member of `collection` (as Envoy's watch map does,
/// measured on Envoy 1.40): a glob collection (`.../*`) holds the names under its path,
/// one segment deeper, a list collection only its own name; either way with the
/// collection's context parameters, in any order. A resource whose name cannot be read
/// is kept (its NACK names it).
pub(super) fn keep_members(resp: &mut Response, collection: &str) {
    let (collection_path, collection_params) = split_params(collection);
    let glob_parent = collection_path.strip_suffix("/*");
    let is_member = |name: &str| {
        let (path, params) = split_params(name);
        let path_matches = match glob_parent {
            Some(parent) => path
                .rsplit_once('/')
                .is_some_and(|(dir, id)| dir == parent && !id.is_empty()),
            None => path == collection_path,
        };
        path_matches && params == collection_params
    };
    match resp {
        Response::Sotw(r) => r.resources.retain(|any| {
            super::updates::unwrap_resource(any.clone())
                .ok()
                .and_then(|any| baton_config::resource::resource_name(&any).ok())
                .is_none_or(|name| is_member(&name))
        }),
        Response::Delta(r) => {
            r.resources.retain(|res| {
                if !res.name.is_empty() {
                    return is_member(&res.name);
                }
                res.resource
                    .as_ref()
                    .and_then(|any| baton_config::resource::resource_name(any).ok())
                    .is_none_or(|name| is_member(&name))
            });
            r.removed_resources.retain(|name| is_member(name));
        }
    }
}

/// An `xdstp://` name's path and its context parameters, sorted.
fn split_params(name: &str) -> (&str, Vec<&str>) {
    match name.split_once('?') {
        Some((path, query)) => {
            let mut params: Vec<&str> = query.split('&').collect();
            params.sort_unstable();
            (path, params)
        }
        None => (name, Vec::new()),
    }
}
