//! Helpers shared by the config integration tests.

/// A self-signed ECDSA P-256 certificate for `cn` and its key (PEM), made by
/// `openssl req` in `dir`.
pub fn self_signed(dir: &std::path::Path, cn: &str) -> (String, String) {
    let (cert, key) = (dir.join("c.pem"), dir.join("k.pem"));
    let status = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .arg("-subj")
        .arg(format!("/CN={cn}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("running openssl (install openssl)");
    assert!(status.success(), "openssl req failed");
    (
        std::fs::read_to_string(cert).expect("cert"),
        std::fs::read_to_string(key).expect("key"),
    )
}
