use std::sync::Arc;

use super::{parse, ClientHelloInfo, Parsed};

/// A real ClientHello from a rustls client.
fn client_hello(sni: &str, alpn: &[&[u8]]) -> Vec<u8> {
    let mut config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).expect("name");
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("write");
    }
    out
}

#[test]
fn reads_sni_and_alpn() {
    let hello = client_hello("WWW.Example.com", &[b"h2", b"http/1.1"]);
    assert_eq!(
        parse(&hello),
        Parsed::Hello(ClientHelloInfo {
            tls: true,
            server_name: Some("www.example.com".into()),
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            // rustls clients always ask for a staple.
            status_request: true,
        })
    );
}

#[test]
fn partial_hello_needs_more() {
    let hello = client_hello("a.example", &[]);
    for cut in [1, 4, 5, 40, hello.len() - 1] {
        assert_eq!(parse(&hello[..cut]), Parsed::NeedMore, "cut at {cut}");
    }
}

#[test]
fn hello_split_over_two_records() {
    let hello = client_hello("split.example", &[b"h2"]);
    let body = &hello[5..];
    let (a, b) = body.split_at(20);
    let mut two = Vec::new();
    for part in [a, b] {
        two.extend_from_slice(&[0x16, 0x03, 0x01]);
        two.extend_from_slice(&u16::try_from(part.len()).expect("len").to_be_bytes());
        two.extend_from_slice(part);
    }
    match parse(&two) {
        Parsed::Hello(info) => assert_eq!(info.server_name.as_deref(), Some("split.example")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn plain_text_is_raw_buffer() {
    assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Parsed::NotTls);
    assert_eq!(parse(b"PRI * HTTP/2.0"), Parsed::NotTls);
    assert_eq!(parse(&[0x16, 0x01]), Parsed::NotTls);
}
