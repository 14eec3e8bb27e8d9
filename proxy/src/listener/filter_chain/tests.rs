//! Filter-chain precedence tests.

use super::*;
use baton_config::model::{FilterChainMatch, NetworkFilter, TcpClusterSpecifier, TcpProxy};

fn chain(name: &str, matcher: FilterChainMatch) -> Arc<FilterChain> {
    Arc::new(FilterChain {
        name: name.to_string(),
        matcher,
        tls: None,
        transport_socket_connect_timeout: None,
        connection_limit: None,
        network: NetworkFilter::TcpProxy(Arc::new(TcpProxy {
            stat_prefix: name.to_string(),
            cluster: TcpClusterSpecifier::Name("c".into()),
            idle_timeout: None,
            max_connect_attempts: 1,
            max_downstream_connection_duration: None,
            access_logs: vec![],
        })),
    })
}

fn listener(chains: Vec<Arc<FilterChain>>, default: Option<Arc<FilterChain>>) -> Listener {
    Listener {
        name: "l".into(),
        address: "127.0.0.1:0".parse().expect("addr"),
        stat_prefix: "listener.127.0.0.1_0.".into(),
        per_connection_buffer_limit_bytes: 1 << 20,
        filter_chains: chains,
        default_filter_chain: default,
        tls_inspector: false,
        listener_filters_timeout: None,
        continue_on_listener_filters_timeout: false,
        reuse_port: false,
        backlog: 128,
        inbound: false,
        ignore_global_conn_limit: false,
        max_accepts_per_event: None,
        proxy_protocol: None,
        ipv4_compat: false,
    }
}

fn pick(l: &Listener, local: &str, remote: &str) -> Option<String> {
    let conn = ConnInfo::plain(
        remote.parse().expect("remote"),
        local.parse().expect("local"),
    );
    select_filter_chain(
        l,
        MatchInput {
            conn: &conn,
            transport_protocol: "raw_buffer",
            application_protocols: &[],
        },
    )
    .map(|c| c.name.clone())
}

#[test]
fn destination_port_beats_catch_all() {
    let l = listener(
        vec![
            chain("any", FilterChainMatch::default()),
            chain(
                "p8080",
                FilterChainMatch {
                    destination_port: Some(8080),
                    ..Default::default()
                },
            ),
        ],
        None,
    );
    assert_eq!(
        pick(&l, "127.0.0.1:8080", "127.0.0.1:5000").as_deref(),
        Some("p8080")
    );
    assert_eq!(
        pick(&l, "127.0.0.1:9090", "127.0.0.1:5000").as_deref(),
        Some("any")
    );
}

#[test]
fn no_match_falls_back_to_default_chain() {
    let only = chain(
        "p1",
        FilterChainMatch {
            destination_port: Some(1),
            ..Default::default()
        },
    );
    let l = listener(vec![only.clone()], None);
    assert_eq!(pick(&l, "127.0.0.1:2", "127.0.0.1:5000"), None);
    let l = listener(
        vec![only],
        Some(chain("default", FilterChainMatch::default())),
    );
    assert_eq!(
        pick(&l, "127.0.0.1:2", "127.0.0.1:5000").as_deref(),
        Some("default")
    );
}

#[test]
fn longest_source_prefix_wins() {
    let range = |len| CidrRange {
        addr: "127.0.0.0".parse().expect("ip"),
        len,
    };
    let l = listener(
        vec![
            chain(
                "wide",
                FilterChainMatch {
                    source_prefix_ranges: vec![range(8)],
                    ..Default::default()
                },
            ),
            chain(
                "narrow",
                FilterChainMatch {
                    source_prefix_ranges: vec![range(24)],
                    ..Default::default()
                },
            ),
        ],
        None,
    );
    assert_eq!(
        pick(&l, "127.0.0.1:80", "127.0.0.9:5000").as_deref(),
        Some("narrow")
    );
    assert_eq!(
        pick(&l, "127.0.0.1:80", "127.1.0.9:5000").as_deref(),
        Some("wide")
    );
}

#[test]
fn server_names_need_sni_and_prefer_exact() {
    let l = listener(
        vec![
            chain(
                "wild",
                FilterChainMatch {
                    server_names: vec!["*.example.com".into()],
                    ..Default::default()
                },
            ),
            chain(
                "exact",
                FilterChainMatch {
                    server_names: vec!["api.example.com".into()],
                    ..Default::default()
                },
            ),
            chain("plain", FilterChainMatch::default()),
        ],
        None,
    );
    let mut conn = ConnInfo::plain(
        "127.0.0.1:5000".parse().expect("remote"),
        "127.0.0.1:443".parse().expect("local"),
    );
    let input = |c: &ConnInfo| {
        select_filter_chain(
            &l,
            MatchInput {
                conn: c,
                transport_protocol: "tls",
                application_protocols: &[],
            },
        )
        .map(|c| c.name.clone())
    };
    assert_eq!(input(&conn).as_deref(), Some("plain"));
    conn.server_name = Some("api.example.com".into());
    assert_eq!(input(&conn).as_deref(), Some("exact"));
    conn.server_name = Some("www.example.com".into());
    assert_eq!(input(&conn).as_deref(), Some("wild"));
}

#[test]
fn cidr_contains_handles_v4_mapped_and_v6() {
    let v4 = CidrRange {
        addr: "10.0.0.0".parse().expect("ip"),
        len: 8,
    };
    assert!(cidr_contains(&v4, "10.1.2.3".parse().expect("ip")));
    assert!(cidr_contains(&v4, "::ffff:10.1.2.3".parse().expect("ip")));
    assert!(!cidr_contains(&v4, "11.0.0.1".parse().expect("ip")));
    let v6 = CidrRange {
        addr: "fd00::".parse().expect("ip"),
        len: 8,
    };
    assert!(cidr_contains(&v6, "fd12::1".parse().expect("ip")));
    assert!(!cidr_contains(&v6, "fe80::1".parse().expect("ip")));
}
