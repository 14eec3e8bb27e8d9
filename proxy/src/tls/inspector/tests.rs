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
    let Parsed::Hello(info) = parse(&hello) else {
        panic!("not a hello");
    };
    let suites = info.suites.expect("suites read");
    assert!(suites.offers_tls13);
    assert_eq!(
        info,
        ClientHelloInfo {
            tls: true,
            server_name: Some("www.example.com".into()),
            server_name_as_sent: Some("WWW.Example.com".into()),
            ecdsa_p256_signatures: true,
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            // rustls clients always ask for a staple.
            status_request: true,
            suites: Some(suites),
            bytes: hello.len(),
        }
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
        Parsed::Hello(info) => {
            assert_eq!(info.server_name.as_deref(), Some("split.example"));
            assert_eq!(info.bytes, two.len());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn plain_text_is_raw_buffer() {
    assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Parsed::NotTls(5));
    assert_eq!(parse(b"PRI * HTTP/2.0"), Parsed::NotTls(5));
    assert_eq!(parse(&[0x16, 0x01]), Parsed::NotTls(2));
    // A record longer than TLS allows is decided from its header.
    assert_eq!(
        parse(&[0x16, 0x03, 0x01, 0xff, 0xff, 0x01]),
        Parsed::NotTls(5)
    );
}

/// A ClientHello bigger than the first peek (many long ALPN names), sent in two writes
/// through a real socket: the peek buffer grows and the whole hello is read.
#[tokio::test]
async fn inspect_reads_a_hello_larger_than_the_first_peek() {
    let names: Vec<Vec<u8>> = (0..40).map(|i| format!("{i:0>100}").into_bytes()).collect();
    let alpn: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
    let hello = client_hello("big.example", &alpn);
    assert!(hello.len() > super::FIRST_PEEK, "{} bytes", hello.len());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let client = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (first, rest) = hello.split_at(1000);
        stream.write_all(first).await.expect("write");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        stream.write_all(rest).await.expect("write");
        stream
    });
    let (server, _) = listener.accept().await.expect("accept");
    let info = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        super::inspect(&server, super::PeerClose::ReadFirst),
    )
    .await
    .expect("bounded")
    .expect("inspected");
    assert_eq!(info.server_name.as_deref(), Some("big.example"));
    assert_eq!(info.alpn.len(), 40);
    drop(client.await.expect("client"));
}
