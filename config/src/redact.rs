//! Redaction of secrets before a message is shown (`/config_dump`), as Envoy does:
//! fields annotated `(udpa.annotations.sensitive) = true` (private keys, PKCS#12 and
//! their passwords, session ticket keys, generic secrets) and everything below them
//! have their strings and bytes replaced by `[redacted]` and other scalars cleared.
//! Messages packed in `Any` (every `typed_config`) are unpacked, redacted and repacked,
//! so a `DownstreamTlsContext` inside a listener's transport socket is covered.

use prost::Message;
use prost_reflect::ReflectMessage;
use prost_reflect::{DynamicMessage, ExtensionDescriptor, FieldDescriptor, Value};

/// What replaces a sensitive string or bytes value.
const REDACTED: &str = "[redacted]";

/// The `udpa.annotations.sensitive` field option, when the pool has it.
fn sensitive_option() -> Option<ExtensionDescriptor> {
    crate::load::pool().get_extension_by_name("udpa.annotations.sensitive")
}

/// Redacts `message` in place.
pub(crate) fn redact(message: &mut DynamicMessage) {
    if let Some(option) = sensitive_option() {
        redact_message(message, &option, false);
    }
}

fn is_sensitive(field: &FieldDescriptor, option: &ExtensionDescriptor) -> bool {
    field
        .options()
        .get_extension(option)
        .as_bool()
        .unwrap_or(false)
}

fn redact_message(message: &mut DynamicMessage, option: &ExtensionDescriptor, sensitive: bool) {
    if message.descriptor().full_name() == "google.protobuf.Any" {
        redact_any(message, option, sensitive);
        return;
    }
    let mut cleared = Vec::new();
    for (field, value) in message.fields_mut() {
        let field_sensitive = sensitive || is_sensitive(&field, option);
        if !redact_value(value, option, field_sensitive) {
            cleared.push(field);
        }
    }
    for field in cleared {
        message.clear_field(&field);
    }
}

/// Redacts one field value; `false` when the field is to be cleared (a sensitive
/// scalar that is neither a string nor bytes).
fn redact_value(value: &mut Value, option: &ExtensionDescriptor, sensitive: bool) -> bool {
    match value {
        Value::Message(m) => {
            redact_message(m, option, sensitive);
            true
        }
        Value::List(items) => {
            let mut keep = true;
            for item in items.iter_mut() {
                keep &= redact_value(item, option, sensitive);
            }
            keep
        }
        // Map values only: redacting keys would collapse them into one entry.
        Value::Map(entries) => {
            let mut keep = true;
            for item in entries.values_mut() {
                keep &= redact_value(item, option, sensitive);
            }
            keep
        }
        Value::String(s) if sensitive => {
            *s = REDACTED.to_string();
            true
        }
        Value::Bytes(b) if sensitive => {
            *b = REDACTED.as_bytes().to_vec().into();
            true
        }
        _ => !sensitive,
    }
}

/// Unpacks an `Any` whose type the pool knows, redacts it and packs it again.
fn redact_any(any: &mut DynamicMessage, option: &ExtensionDescriptor, sensitive: bool) {
    let Some(type_url) = any
        .get_field_by_name("type_url")
        .and_then(|v| v.as_str().map(str::to_owned))
    else {
        return;
    };
    let Some(value) = any
        .get_field_by_name("value")
        .and_then(|v| v.as_bytes().cloned())
    else {
        return;
    };
    let type_name = type_url.rsplit('/').next().unwrap_or_default();
    let Some(descriptor) = crate::load::pool().get_message_by_name(type_name) else {
        return;
    };
    let Ok(mut inner) = DynamicMessage::decode(descriptor, value.as_ref()) else {
        return;
    };
    redact_message(&mut inner, option, sensitive);
    any.set_field_by_name("value", Value::Bytes(inner.encode_to_vec().into()));
}

#[cfg(test)]
mod tests {
    /// The bootstrap as `/config_dump` shows it.
    fn dump(yaml: &str) -> serde_json::Value {
        let json = crate::load::parse_text(yaml).expect("yaml");
        let message = crate::load::to_dynamic(&json, "envoy.config.bootstrap.v3.Bootstrap")
            .expect("bootstrap");
        crate::load::to_json(&message)
    }

    #[test]
    fn private_keys_and_ticket_keys_are_redacted_inside_typed_config() {
        let out = dump(
            r#"
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          session_ticket_keys: { keys: [ { inline_bytes: eHh4 } ] }
          common_tls_context:
            tls_certificates:
            - certificate_chain: { filename: /c.pem }
              private_key: { inline_string: "SECRET" }
            - certificate_chain: { inline_string: "CERT" }
              private_key: { filename: /k.pem }
"#,
        );
        let ctx = &out["static_resources"]["listeners"][0]["filter_chains"][0]["transport_socket"]
            ["typed_config"];
        let certs = &ctx["common_tls_context"]["tls_certificates"];
        assert_eq!(certs[0]["private_key"]["inline_string"], "[redacted]");
        assert_eq!(certs[0]["certificate_chain"]["filename"], "/c.pem");
        assert_eq!(certs[1]["private_key"]["filename"], "[redacted]");
        assert_eq!(certs[1]["certificate_chain"]["inline_string"], "CERT");
        // bytes: base64 of "[redacted]", as Envoy shows it.
        assert_eq!(
            ctx["session_ticket_keys"]["keys"][0]["inline_bytes"],
            "W3JlZGFjdGVkXQ=="
        );
    }
}
