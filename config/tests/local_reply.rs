//! `local_reply_config` translation: mappers keep their order and fields, body formats
//! get Envoy's default content types, and access-log filters Baton cannot evaluate are
//! refused by name.

mod common;

use baton_config::load_yaml_str;
use baton_config::model::{self, AccessLogFilter, AccessLogFormat, ComparisonOp, NetworkFilter};

fn yaml(local_reply_config: &str) -> String {
    common::hcm_bootstrap(&format!("local_reply_config: {local_reply_config}"))
}

fn local_reply(config: &str) -> model::LocalReplyConfig {
    let text = yaml(config);
    let loaded = load_yaml_str(&text).unwrap_or_else(|e| panic!("expected to load: {e}\n{text}"));
    match &loaded.model.listeners[0].filter_chains[0].network {
        NetworkFilter::Http(h) => h.local_reply.clone().expect("local_reply_config"),
        other => panic!("expected HCM, got {other:?}"),
    }
}

fn err(config: &str) -> String {
    match load_yaml_str(&yaml(config)) {
        Ok(_) => panic!("expected an error for {config}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn mappers_and_body_formats_translate_in_order() {
    let c = local_reply(
        r#"{ mappers: [
            { filter: { status_code_filter: { comparison: { op: GE, value: { default_value: 500, runtime_key: k } } } },
              status_code: 502, body: { inline_string: "x" }, headers_to_add: [ { header: { key: a, value: b } } ] },
            { filter: { or_filter: { filters: [ { response_flag_filter: { flags: [NR] } }, { not_health_check_filter: {} } ] } },
              body_format_override: { json_format: { code: "%RESPONSE_CODE%" } } } ],
          body_format: { text_format: "%LOCAL_REPLY_BODY%\n", content_type: "text/html" } }"#,
    );
    assert_eq!(c.mappers.len(), 2);
    let first = &c.mappers[0];
    assert!(matches!(
        &first.filter,
        AccessLogFilter::StatusCode(cmp) if cmp.op == ComparisonOp::Ge && cmp.value == 500
    ));
    assert_eq!(first.status_code, Some(502));
    assert_eq!(first.body.as_deref(), Some("x"));
    assert_eq!(first.headers_to_add.len(), 1);
    let second = &c.mappers[1];
    assert!(matches!(&second.filter, AccessLogFilter::Or(f) if f.len() == 2));
    let json = second.body_format_override.as_ref().expect("override");
    assert!(matches!(json.format, AccessLogFormat::Json(_)));
    assert_eq!(json.content_type, "application/json");
    let body = c.body_format.as_ref().expect("body_format");
    assert!(matches!(body.format, AccessLogFormat::Text(_)));
    assert_eq!(body.content_type, "text/html");
}

#[test]
fn extension_filters_and_bad_values_are_refused_by_name() {
    let e =
        err(r#"{ mappers: [ { filter: { extension_filter: { name: x } }, status_code: 500 } ] }"#);
    assert!(e.contains("extension_filter"), "{e}");
    let e = err(r#"{ mappers: [ { filter: { response_flag_filter: { flags: [XX] } } } ] }"#);
    assert!(e.contains("XX"), "{e}");
    let e =
        err(r#"{ mappers: [ { filter: { not_health_check_filter: {} }, status_code: 100 } ] }"#);
    assert!(e.contains("status_code"), "{e}");
}
