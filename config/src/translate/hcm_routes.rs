//! An HTTP connection manager's inline route table translated one route at a time.
//!
//! prost decodes an HCM with every `Route` of its `route_config` at once: at 10,000
//! routes per virtual host times two that was 20,000 `Route`s of 2,272 bytes in a vector
//! grown to 32,768 (74 MB), all held while the routes were translated, the top of the
//! heap at start-up. Here the HCM's bytes are split: the HCM without its routes (decoded
//! as usual) and each virtual host's routes as the bytes they were written in, each
//! decoded when its turn comes and dropped once translated ([`RouteSource`]).
//!
//! Nothing observable changes: the HCM is split only when its route specifier is one
//! inline `route_config` and the bytes are plain (no groups); when anything fails to
//! decode or translate, the caller is told to decode the whole HCM as before unless
//! every route decodes (so a decode error still comes before any translation error).

use prost::encoding::{decode_key, decode_varint, encode_key, encode_varint, WireType};
use prost::Message;

use baton_proto::pb::envoy::config::route::v3 as route_pb;

use crate::error::{ConfigError, Result};

/// `HttpConnectionManager` fields: the route specifier's members.
const HCM_RDS: u32 = 3;
const HCM_ROUTE_CONFIG: u32 = 4;
const HCM_SCOPED_ROUTES: u32 = 31;
/// `RouteConfiguration.virtual_hosts`.
const RC_VIRTUAL_HOSTS: u32 = 2;
/// `VirtualHost.routes`.
const VH_ROUTES: u32 = 3;

/// The routes of the inline table's virtual hosts, in order, as bytes.
#[derive(Debug, Default)]
pub(crate) struct EncodedRoutes<'b> {
    per_host: Vec<Vec<&'b [u8]>>,
}

impl EncodedRoutes<'_> {
    /// Whether every route decodes.
    pub(crate) fn all_decode(&self) -> bool {
        self.per_host
            .iter()
            .flatten()
            .all(|bytes| route_pb::Route::decode(*bytes).is_ok())
    }
}

/// Where a virtual host's routes come from.
#[derive(Clone, Copy)]
pub(crate) enum RouteSource<'r, 'b> {
    /// Decoded with the virtual host.
    Decoded(&'r [route_pb::Route]),
    /// Still encoded (the virtual host was decoded without them).
    Encoded(&'r [&'b [u8]]),
}

impl<'r> RouteSource<'r, '_> {
    /// The routes of virtual host `index` of a table whose hosts were decoded as `vh`.
    pub(crate) fn of(
        vh: &'r route_pb::VirtualHost,
        index: usize,
        encoded: Option<&'r EncodedRoutes<'_>>,
    ) -> RouteSource<'r, 'r> {
        match encoded.and_then(|encoded| encoded.per_host.get(index)) {
            Some(routes) => RouteSource::Encoded(routes),
            None => RouteSource::Decoded(&vh.routes),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            RouteSource::Decoded(routes) => routes.len(),
            RouteSource::Encoded(routes) => routes.len(),
        }
    }

    /// Calls `each` with every route in order (decoding an encoded one first, and
    /// dropping it after), stopping at the first error. A route that does not decode
    /// fails at `path_of(i)` (the caller then decodes the whole HCM, which names it).
    pub(crate) fn for_each<T>(
        &self,
        path_of: impl Fn(usize) -> String,
        mut each: impl FnMut(usize, &route_pb::Route) -> Result<T>,
        out: &mut Vec<T>,
    ) -> Result<()> {
        match self {
            RouteSource::Decoded(routes) => {
                for (i, route) in routes.iter().enumerate() {
                    out.push(each(i, route)?);
                }
            }
            RouteSource::Encoded(routes) => {
                for (i, bytes) in routes.iter().enumerate() {
                    let route = route_pb::Route::decode(*bytes)
                        .map_err(|e| ConfigError::at(path_of(i), format!("cannot decode: {e}")))?;
                    out.push(each(i, &route)?);
                }
            }
        }
        Ok(())
    }
}

/// One field as written: its number and wire type, all its bytes and, for a
/// length-delimited one, its contents.
struct Field<'b> {
    number: u32,
    wire_type: WireType,
    raw: &'b [u8],
    contents: &'b [u8],
}

/// The next field of `buf`; `None` at a group or malformed bytes.
fn next_field<'b>(buf: &mut &'b [u8]) -> Option<Field<'b>> {
    let start: &'b [u8] = buf;
    let (number, wire_type) = decode_key(buf).ok()?;
    let mut contents: &'b [u8] = &[];
    let skip = match wire_type {
        WireType::Varint => {
            decode_varint(buf).ok()?;
            0
        }
        WireType::SixtyFourBit => 8,
        WireType::ThirtyTwoBit => 4,
        WireType::LengthDelimited => {
            let len = usize::try_from(decode_varint(buf).ok()?).ok()?;
            contents = buf.get(..len)?;
            len
        }
        WireType::StartGroup | WireType::EndGroup => return None,
    };
    *buf = buf.get(skip..)?;
    let raw = &start[..start.len() - buf.len()];
    Some(Field {
        number,
        wire_type,
        raw,
        contents,
    })
}

fn write_message(number: u32, contents: &[u8], out: &mut Vec<u8>) {
    encode_key(number, WireType::LengthDelimited, out);
    encode_varint(contents.len() as u64, out);
    out.extend_from_slice(contents);
}

/// `hcm` without the routes of its inline `route_config`, and those routes; `None` when
/// the route specifier is not exactly one inline `route_config` or the bytes are not
/// plain (the caller then decodes them whole).
pub(crate) fn split(hcm: &[u8]) -> Option<(Vec<u8>, EncodedRoutes<'_>)> {
    let mut out = Vec::with_capacity(hcm.len());
    let mut routes = EncodedRoutes::default();
    let mut route_configs = 0;
    let mut buf = hcm;
    while !buf.is_empty() {
        let field = next_field(&mut buf)?;
        match field.number {
            HCM_RDS | HCM_SCOPED_ROUTES => return None,
            HCM_ROUTE_CONFIG => {
                route_configs += 1;
                if route_configs > 1 || field.wire_type != WireType::LengthDelimited {
                    return None;
                }
                let table = strip_table(field.contents, &mut routes)?;
                write_message(HCM_ROUTE_CONFIG, &table, &mut out);
            }
            _ => out.extend_from_slice(field.raw),
        }
    }
    (route_configs == 1).then_some((out, routes))
}

/// A `RouteConfiguration`'s bytes with its virtual hosts' routes moved to `routes`.
fn strip_table<'b>(table: &'b [u8], routes: &mut EncodedRoutes<'b>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = table;
    while !buf.is_empty() {
        let field = next_field(&mut buf)?;
        if field.number != RC_VIRTUAL_HOSTS {
            out.extend_from_slice(field.raw);
            continue;
        }
        if field.wire_type != WireType::LengthDelimited {
            return None;
        }
        let mut host = Vec::new();
        let mut host_routes = Vec::new();
        let mut host_buf = field.contents;
        while !host_buf.is_empty() {
            let host_field = next_field(&mut host_buf)?;
            if host_field.number != VH_ROUTES {
                host.extend_from_slice(host_field.raw);
            } else if host_field.wire_type == WireType::LengthDelimited {
                host_routes.push(host_field.contents);
            } else {
                return None;
            }
        }
        write_message(RC_VIRTUAL_HOSTS, &host, &mut out);
        routes.per_host.push(host_routes);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_proto::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm_pb;
    use hcm_pb::http_connection_manager::RouteSpecifier;

    fn route(prefix: &str) -> route_pb::Route {
        route_pb::Route {
            name: prefix.to_string(),
            r#match: Some(route_pb::RouteMatch {
                path_specifier: Some(route_pb::route_match::PathSpecifier::Prefix(
                    prefix.to_string(),
                )),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn host(name: &str, routes: Vec<route_pb::Route>) -> route_pb::VirtualHost {
        route_pb::VirtualHost {
            name: name.to_string(),
            domains: vec![name.to_string()],
            routes,
            ..Default::default()
        }
    }

    /// The stripped HCM and the routes put back together are the HCM decoded whole.
    #[test]
    fn split_keeps_everything_but_the_routes() {
        let whole = hcm_pb::HttpConnectionManager {
            stat_prefix: "s".to_string(),
            route_specifier: Some(RouteSpecifier::RouteConfig(route_pb::RouteConfiguration {
                name: "rc".to_string(),
                virtual_hosts: vec![
                    host("a", vec![route("/a"), route("/b")]),
                    host("b", vec![]),
                    host("c", vec![route("/c")]),
                ],
                ..Default::default()
            })),
            ..Default::default()
        };
        let bytes = whole.encode_to_vec();
        let (stripped, routes) = split(&bytes).expect("split");
        let mut rebuilt =
            hcm_pb::HttpConnectionManager::decode(stripped.as_slice()).expect("decode");
        let Some(RouteSpecifier::RouteConfig(table)) = &mut rebuilt.route_specifier else {
            panic!("no table");
        };
        assert!(table.virtual_hosts.iter().all(|vh| vh.routes.is_empty()));
        for (i, vh) in table.virtual_hosts.iter_mut().enumerate() {
            let source = RouteSource::of(vh, i, Some(&routes));
            let mut decoded = Vec::new();
            source
                .for_each(|i| format!("r[{i}]"), |_, r| Ok(r.clone()), &mut decoded)
                .expect("routes");
            vh.routes = decoded;
        }
        assert_eq!(rebuilt, whole);
        assert!(routes.all_decode());
    }

    /// A translation error before a route that does not decode: the whole decode's error,
    /// as when the HCM was decoded at once; without that route, the translation error.
    #[test]
    fn a_route_that_does_not_decode_fails_as_the_whole_decode_does() {
        use crate::translate::{decode_any, listener::http_connection_manager, Context, Env};
        use prost::encoding::encode_varint;
        const HCM: &str =
            "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
        let length_delimited = |key: u8, contents: &[u8]| {
            let mut out = vec![key];
            encode_varint(contents.len() as u64, &mut out);
            out.extend_from_slice(contents);
            out
        };
        let mut unknown_cluster = route("/");
        unknown_cluster.action = Some(route_pb::route::Action::Route(route_pb::RouteAction {
            cluster_specifier: Some(route_pb::route_action::ClusterSpecifier::Cluster(
                "nowhere".to_string(),
            )),
            ..Default::default()
        }));
        let host_bytes = host("a", vec![unknown_cluster]).encode_to_vec();
        let any_of = |host_bytes: &[u8]| {
            let mut value = hcm_pb::HttpConnectionManager {
                stat_prefix: "s".to_string(),
                ..Default::default()
            }
            .encode_to_vec();
            // route_config (4) holding virtual_hosts (2).
            value.extend(length_delimited(0x22, &length_delimited(0x12, host_bytes)));
            prost_types::Any {
                type_url: format!("type.googleapis.com/{HCM}"),
                value,
            }
        };
        let env = Env::new(&Default::default()).expect("env");
        let ctx = Context {
            env: &env,
            known_cluster: &|_: &str| false,
            clusters_origin: "test",
        };

        // A second route (3) whose bytes end inside a key.
        let broken = any_of(&[host_bytes.clone(), length_delimited(0x1a, &[0x80])].concat());
        let err = http_connection_manager(&broken, "f", &ctx).expect_err("broken route");
        let whole = decode_any::<hcm_pb::HttpConnectionManager>(&broken, HCM, "f")
            .expect_err("whole decode");
        assert_eq!(err.to_string(), whole.to_string());

        let err = http_connection_manager(&any_of(&host_bytes), "f", &ctx).expect_err("cluster");
        assert!(
            err.to_string().contains("unknown cluster 'nowhere'"),
            "{err}"
        );
    }

    #[test]
    fn other_route_specifiers_are_not_split() {
        let rds = hcm_pb::HttpConnectionManager {
            route_specifier: Some(RouteSpecifier::Rds(Default::default())),
            ..Default::default()
        };
        assert!(split(&rds.encode_to_vec()).is_none());
        assert!(split(&hcm_pb::HttpConnectionManager::default().encode_to_vec()).is_none());
        let table = hcm_pb::HttpConnectionManager {
            route_specifier: Some(RouteSpecifier::RouteConfig(Default::default())),
            ..Default::default()
        }
        .encode_to_vec();
        let twice = [table.clone(), table.clone()].concat();
        assert!(split(&table).is_some());
        assert!(split(&twice).is_none());
        assert!(split(&table[..1]).is_none());
    }
}
