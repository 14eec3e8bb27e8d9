//! The layered runtime on the data plane: a route match's `runtime_fraction` follows its
//! runtime key, and a key set through `/runtime_modify` (the admin layer) changes which
//! route matches for the next request; `/runtime` shows the override in the admin layer.
//!
//! Envoy 1.40's answers, measured with this test: `default_value` 0% never matches; a
//! key of 100 always does; an empty value removes the override (back to the default);
//! `/runtime_modify` answers `OK`; without an admin layer it answers 503
//! `No admin layer specified`.

use baton_tests::config::{routes_of, simple_proxy};
use baton_tests::{get, Proxy};
use serde_json::json;

#[tokio::test]
async fn runtime_fraction_follows_the_admin_layer() -> anyhow::Result<()> {
    let mut cfg = simple_proxy(&[]);
    cfg["layered_runtime"] = json!({ "layers": [
        { "name": "base", "static_layer": { "routing": { "other": 1 } } },
        { "name": "admin", "admin_layer": {} } ] });
    *routes_of(&mut cfg, 0) = json!([
        { "match": { "prefix": "/", "runtime_fraction": {
            "default_value": { "numerator": 0 }, "runtime_key": "routing.canary" } },
          "direct_response": { "status": 200, "body": { "inline_string": "canary" } } },
        { "match": { "prefix": "/" },
          "direct_response": { "status": 200, "body": { "inline_string": "stable" } } },
    ]);
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("http").await?;
    let body = |r: baton_tests::RawResponse| r.body_text();
    assert_eq!(body(get(addr, "/").await?), "stable");

    let modify = |query: &'static str| {
        let proxy = &proxy;
        async move {
            let resp = proxy
                .admin_request("POST", &format!("/runtime_modify?{query}"))
                .await?;
            anyhow::ensure!(resp.status == 200, "{} {}", resp.status, resp.body_text());
            anyhow::Ok(resp.body_text())
        }
    };
    assert_eq!(modify("routing.canary=100").await?, "OK\n");
    assert_eq!(body(get(addr, "/").await?), "canary");
    let runtime = proxy.admin_request("GET", "/runtime").await?.json()?;
    assert_eq!(
        runtime["entries"]["routing.canary"],
        json!({ "layer_values": ["", "100"], "final_value": "100" })
    );
    modify("routing.canary=0").await?;
    assert_eq!(body(get(addr, "/").await?), "stable");
    modify("routing.canary=100").await?;
    modify("routing.canary=").await?;
    assert_eq!(body(get(addr, "/").await?), "stable");
    Ok(())
}

#[tokio::test]
async fn runtime_modify_without_an_admin_layer_is_refused() -> anyhow::Result<()> {
    let mut cfg = simple_proxy(&[]);
    cfg["layered_runtime"] = json!({ "layers": [
        { "name": "base", "static_layer": {} } ] });
    let proxy = Proxy::start(&cfg).await?;
    let resp = proxy
        .admin_request("POST", "/runtime_modify?routing.canary=100")
        .await?;
    assert_eq!(resp.status, 503);
    assert_eq!(resp.body_text(), "No admin layer specified");
    Ok(())
}

/// `runtime.<name>` for each name of `names`, in order.
async fn runtime_stats(proxy: &Proxy, names: &[&str]) -> anyhow::Result<Vec<u64>> {
    let mut values = Vec::new();
    for name in names {
        let value = proxy.stat(&format!("runtime.{name}")).await?;
        values.push(value.ok_or_else(|| anyhow::anyhow!("no runtime.{name}"))?);
    }
    Ok(values)
}

#[tokio::test]
async fn loader_stats_count_loads_keys_layers_and_overrides() -> anyhow::Result<()> {
    // Measured on Envoy 1.40: two loads at start; each `/runtime_modify` one more; a
    // missing override directory counted on every load; keys are the distinct final keys
    // (nested static values flattened); the admin layer is "active" while it holds any.
    let mut cfg = simple_proxy(&[]);
    cfg["layered_runtime"] = json!({ "layers": [
        { "name": "base", "static_layer": { "a.b": 1, "c": "x", "nested": { "d": 2, "e": 3 } } },
        { "name": "admin", "admin_layer": {} } ] });
    let proxy = Proxy::start(&cfg).await?;
    let names = [
        "load_success",
        "override_dir_not_exists",
        "num_keys",
        "num_layers",
        "admin_overrides_active",
        "load_error",
        "override_dir_exists",
    ];
    assert_eq!(runtime_stats(&proxy, &names).await?, [2, 2, 4, 2, 0, 0, 0]);
    for (query, expected) in [
        ("k1=v1&k2=v2", [3, 3, 6, 2, 1, 0, 0]),
        ("k1=&k2=", [4, 4, 4, 2, 0, 0, 0]),
        ("a.b=5", [5, 5, 4, 2, 1, 0, 0]),
    ] {
        let resp = proxy
            .admin_request("POST", &format!("/runtime_modify?{query}"))
            .await?;
        assert_eq!(resp.status, 200, "{}", resp.body_text());
        assert_eq!(runtime_stats(&proxy, &names).await?, expected, "{query}");
    }
    Ok(())
}
