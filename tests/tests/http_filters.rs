//! `http_filters` and `typed_per_filter_config` as Envoy 1.40 takes them: optional
//! filters Baton does not implement are skipped (also when Baton has no proto for their
//! config) and traffic flows; per-route configs of unknown filters are refused unless
//! optional; `disabled` entries for filters the chain lacks change nothing.

use baton_tests::config::{
    bootstrap, direct_route, http_listener, route_config, router_filter, vhost,
};
use baton_tests::{get_with, run_to_completion, Proxy, TempDir};
use serde_json::{json, Value};

const TYPED_STRUCT: &str = "type.googleapis.com/xds.type.v3.TypedStruct";
const FILTER_CONFIG: &str = "type.googleapis.com/envoy.config.route.v3.FilterConfig";

/// One HTTP listener whose only route answers 200 "ok" and carries `per_filter`, with
/// `filters` before the router.
fn config(filters: Vec<Value>, per_filter: Value) -> Value {
    let mut route = direct_route("/", 200, "ok");
    route["typed_per_filter_config"] = per_filter;
    let mut cfg = bootstrap(
        vec![http_listener(
            "http",
            route_config(vec![vhost("all", &["*"], vec![route])]),
        )],
        vec![],
    );
    let mut chain = filters;
    chain.push(router_filter());
    cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        ["http_filters"] = Value::Array(chain);
    cfg
}

fn unknown_typed_struct() -> Value {
    json!({ "@type": TYPED_STRUCT, "type_url": "type.googleapis.com/my.unknown.v3.Filter", "value": {} })
}

#[tokio::test]
async fn optional_filters_baton_lacks_are_skipped() -> anyhow::Result<()> {
    let cfg = config(
        vec![
            json!({ "name": "my.unknown", "is_optional": true, "typed_config": unknown_typed_struct() }),
            // Envoy installs its CORS filter (a no-op for this request); Baton skips it.
            json!({ "name": "envoy.filters.http.cors", "is_optional": true,
                    "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors" } }),
            json!({ "name": "my.nameonly", "is_optional": true }),
        ],
        json!({
            "my.unknown": { "@type": FILTER_CONFIG, "is_optional": true, "config": unknown_typed_struct() },
            "my.other": { "@type": FILTER_CONFIG, "disabled": true },
        }),
    );
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("http").await?;
    let resp = get_with(addr, "/", &[("host", "example.test")]).await?;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "ok");
    Ok(())
}

fn validate(cfg: &Value) -> anyhow::Result<(bool, String)> {
    let dir = TempDir::new()?;
    let path = dir.join("config.yaml");
    std::fs::write(&path, serde_json::to_string_pretty(cfg)?)?;
    let path_text = path.display().to_string();
    let (status, out, err) = run_to_completion(&["--mode", "validate", "-c", &path_text])?;
    Ok((status.success(), format!("{out}\n{err}")))
}

#[test]
fn unknown_filters_and_their_per_route_configs_are_refused_unless_optional() -> anyhow::Result<()> {
    let refused = [
        config(
            vec![json!({ "name": "my.unknown", "typed_config": unknown_typed_struct() })],
            json!({}),
        ),
        config(
            vec![
                json!({ "name": "my.unknown", "disabled": true, "typed_config": unknown_typed_struct() }),
            ],
            json!({}),
        ),
        config(vec![], json!({ "my.unknown": unknown_typed_struct() })),
        config(
            vec![],
            json!({ "my.unknown": { "@type": FILTER_CONFIG, "config": unknown_typed_struct() } }),
        ),
        config(
            vec![],
            json!({ "envoy.filters.http.router": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" } }),
        ),
    ];
    for cfg in &refused {
        let (ok, text) = validate(cfg)?;
        assert!(!ok, "accepted:\n{cfg:#}\n{text}");
    }
    let (ok, text) = validate(&config(
        vec![
            json!({ "name": "my.unknown", "is_optional": true, "disabled": true,
                     "typed_config": unknown_typed_struct() }),
        ],
        json!({ "my.unknown": { "@type": FILTER_CONFIG, "disabled": true, "config": unknown_typed_struct() } }),
    ))?;
    assert!(ok, "{text}");
    Ok(())
}
