//! The corpus data model: one YAML file per area under `tests/differential/cases/`, each with
//! the proxy configs its cases need (shorthands expanded by [`super::bootstrap`]), the
//! upstreams to start, and the cases (what to send, how the upstream answers, what to compare).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// Errors loading the corpus.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is not a valid area file.
    #[error("parsing {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The YAML error.
        source: serde_yaml_ng::Error,
    },
    /// A file parses but is inconsistent (unknown config name, duplicate case name).
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// One area file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AreaSpec {
    /// Area name (the file stem; case names are `<area>/<case>`).
    pub area: String,
    /// What the area covers.
    #[serde(default)]
    pub description: String,
    /// Upstreams started for the area (default: one HTTP upstream `backend`).
    #[serde(default = "default_upstreams")]
    pub upstreams: Vec<UpstreamDecl>,
    /// Proxy configs by name; a case names one (default: `default`).
    pub configs: BTreeMap<String, ConfigSpec>,
    /// The cases, run in order against one proxy per config.
    pub cases: Vec<CaseSpec>,
}

/// An upstream started by the runner; its port is the placeholder `{{PORT_<name>}}` and the
/// default bootstrap has a cluster of the same name pointing at it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamDecl {
    /// Name (cluster name and placeholder suffix).
    pub name: String,
    /// What it speaks.
    #[serde(default)]
    pub kind: UpstreamKind,
}

fn default_upstreams() -> Vec<UpstreamDecl> {
    vec![UpstreamDecl {
        name: "backend".into(),
        kind: UpstreamKind::Http,
    }]
}

/// Kind of upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamKind {
    /// HTTP/1.x that records each request and answers as the case's [`UpstreamReply`] says.
    #[default]
    Http,
    /// Raw TCP byte echo (tcp_proxy).
    Echo,
    /// [`Self::Http`] behind TLS: `certs/upstream.pem` (DNS:upstream.example.com, issued
    /// by `certs/ca.pem`), no ALPN, no client certificate asked.
    Tls,
    /// [`Self::Tls`] requiring a client certificate issued by `certs/ca.pem`.
    TlsClientCert,
}

/// A proxy config. Exactly one of `hcm`, `tcp_proxy` or `raw` says what the listener `main`
/// runs; `raw` is a whole bootstrap (it must still have a listener named `main`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSpec {
    /// Fields of the HTTP connection manager, merged over `stat_prefix: ingress_http`,
    /// `codec_type: AUTO` and a router-only `http_filters`.
    #[serde(default)]
    pub hcm: Option<Value>,
    /// Fields of a tcp_proxy filter, merged over `stat_prefix: tcp`.
    #[serde(default)]
    pub tcp_proxy: Option<Value>,
    /// The default filter chain's `transport_socket` (e.g. a `DownstreamTlsContext`).
    #[serde(default)]
    pub transport_socket: Option<Value>,
    /// Fields merged into the listener (e.g. `per_connection_buffer_limit_bytes`).
    #[serde(default)]
    pub listener: Option<Value>,
    /// Clusters appended to the default ones (one per upstream).
    #[serde(default)]
    pub extra_clusters: Vec<Value>,
    /// Fields merged into each default cluster (e.g. `typed_extension_protocol_options`).
    #[serde(default)]
    pub cluster: Option<Value>,
    /// Fields merged into the bootstrap's top level (e.g. `layered_runtime`).
    #[serde(default)]
    pub bootstrap: Option<Value>,
    /// A whole bootstrap instead of the shorthands.
    #[serde(default)]
    pub raw: Option<Value>,
    /// An access log on the HTTP connection manager or tcp_proxy, written to a file the
    /// runner reads after each case (its new lines are the case's `access_log`): a string is
    /// a text format, `{ log_format: ..., filter: ... }` a whole `log_format` (and the
    /// logger's optional `filter`), another object a `json_format`. Each line should show the request path, so that the probe's is dropped.
    #[serde(default)]
    pub access_log: Option<Value>,
}

/// How a case talks to the proxy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Proto {
    /// HTTP/1.1 request built from method/path/host/headers/body.
    #[default]
    H1,
    /// The same as HTTP/1.0.
    H10,
    /// HTTP/2 with prior knowledge (cleartext).
    H2c,
    /// Exact bytes (`raw`), then read `responses` HTTP/1 responses.
    Raw,
    /// Raw TCP: send `raw`, read the echo, half-close, read to EOF (tcp_proxy).
    Tcp,
    /// HTTP/2 frames written by hand (`frames`; see [`super::h2raw`]).
    H2raw,
}

/// Where a case connects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The listener `main`.
    #[default]
    Listener,
    /// The admin listener.
    Admin,
}

/// What of the response body is compared: `exact`, `ignore`, `json_keys` or
/// `{ lines: REGEX }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "BodyModeText")]
pub enum BodyMode {
    /// The whole body (after normalisation).
    #[default]
    Exact,
    /// Not at all (content-length is normalised too); only presence.
    Ignore,
    /// The sorted top-level keys of a JSON object body.
    JsonKeys,
    /// Only the lines matching this regex, in order.
    Lines(String),
    /// The body up to the end of the first occurrence of this text (all of it when
    /// absent): a local reply whose tail is the TLS library's own error text.
    Until(String),
}

/// How [`BodyMode`] is written in YAML (serde_yaml_ng wants tags for enum maps).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum BodyModeText {
    Name(String),
    Lines { lines: String },
    Until { until: String },
}

impl TryFrom<BodyModeText> for BodyMode {
    type Error = String;

    fn try_from(text: BodyModeText) -> Result<Self, Self::Error> {
        match text {
            BodyModeText::Lines { lines } => Ok(Self::Lines(lines)),
            BodyModeText::Until { until } => Ok(Self::Until(until)),
            BodyModeText::Name(name) => match name.as_str() {
                "exact" => Ok(Self::Exact),
                "ignore" => Ok(Self::Ignore),
                "json_keys" => Ok(Self::JsonKeys),
                other => Err(format!(
                    "body_mode {other}: expected exact, ignore, json_keys, {{ lines: REGEX }} or {{ until: TEXT }}"
                )),
            },
        }
    }
}

/// One case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseSpec {
    /// Name, unique in the area.
    pub name: String,
    /// Why the case is here / what it shows.
    #[serde(default)]
    pub note: String,
    /// Config name (default `default`).
    #[serde(default = "default_config")]
    pub config: String,
    /// Protocol.
    #[serde(default)]
    pub proto: Proto,
    /// Listener or admin.
    #[serde(default)]
    pub target: Target,
    /// Method (h1/h10/h2c).
    #[serde(default = "default_method")]
    pub method: String,
    /// Path with query.
    #[serde(default = "default_path")]
    pub path: String,
    /// `host` (HTTP/1) or `:authority` (h2c); null sends no host header.
    #[serde(default = "default_host")]
    pub host: Option<String>,
    /// Extra request headers, in order.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Request body (sent with content-length unless a framing header is given).
    #[serde(default)]
    pub body: String,
    /// Exact bytes for `raw` and `tcp`.
    #[serde(default)]
    pub raw: Option<String>,
    /// How many responses to read for `raw` (default 1; fewer when the proxy closes).
    #[serde(default)]
    pub responses: Option<usize>,
    /// Bytes sent through the tunnel after a 101 (or a 2xx to CONNECT); the echo is compared.
    #[serde(default)]
    pub tunnel: Option<String>,
    /// How the upstream answers.
    #[serde(default)]
    pub upstream: UpstreamReply,
    /// What of the body to compare.
    #[serde(default)]
    pub body_mode: BodyMode,
    /// Whether to probe if the connection stayed open (default: yes unless upgraded/raw
    /// closed). The probe is a second request `GET /__probe` on the same connection.
    #[serde(default)]
    pub probe: Option<bool>,
    /// Speak TLS to the listener (what the client offers; see [`super::tls`]).
    #[serde(default)]
    pub tls: Option<super::tls::TlsClientSpec>,
    /// The frames of an `h2raw` case, in order.
    #[serde(default)]
    pub frames: Vec<super::h2raw::FrameStep>,
}

fn default_config() -> String {
    "default".into()
}
fn default_method() -> String {
    "GET".into()
}
fn default_path() -> String {
    "/".into()
}
fn default_host() -> Option<String> {
    Some("test".into())
}

/// How the recording upstream answers a case's requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamReply {
    /// Status code.
    pub status: u16,
    /// Status line version, `HTTP/1.1` or `HTTP/1.0` (which also closes after the reply).
    pub version: String,
    /// Response headers, in order (no framing headers: see `framing`).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
    /// How the body is framed.
    pub framing: ReplyFraming,
    /// Wait before answering.
    pub delay_ms: u64,
    /// Add `connection: close` and close after the reply.
    pub close: bool,
    /// Close the connection without answering.
    pub reset: bool,
    /// Answer `101 Switching Protocols` (echoing the `upgrade` header) and echo bytes.
    pub switch: bool,
}

impl Default for UpstreamReply {
    fn default() -> Self {
        Self {
            status: 200,
            version: "HTTP/1.1".into(),
            headers: vec![("content-type".into(), "text/plain".into())],
            body: "upstream body\n".into(),
            framing: ReplyFraming::ContentLength,
            delay_ms: 0,
            close: false,
            reset: false,
            switch: false,
        }
    }
}

/// Body framing of the upstream's reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyFraming {
    /// `content-length`.
    #[default]
    ContentLength,
    /// `transfer-encoding: chunked` (two chunks).
    Chunked,
    /// No length: delimited by closing the connection.
    Close,
    /// Neither a length nor a body (for 204/304 or to test the proxy's own framing).
    None,
}

/// The corpus directory: `tests/differential` in the source tree.
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("differential")
}

/// Loads one area file and checks its consistency.
pub fn load_area(path: &Path) -> Result<AreaSpec, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let area: AreaSpec = serde_yaml_ng::from_str(&text).map_err(|source| SpecError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |message: String| SpecError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let mut seen = std::collections::BTreeSet::new();
    for case in &area.cases {
        if !seen.insert(case.name.as_str()) {
            return Err(invalid(format!("duplicate case {}", case.name)));
        }
        if !area.configs.contains_key(&case.config) {
            return Err(invalid(format!(
                "case {} names unknown config {}",
                case.name, case.config
            )));
        }
        if matches!(case.proto, Proto::Raw | Proto::Tcp) && case.raw.is_none() {
            return Err(invalid(format!("case {} needs `raw` bytes", case.name)));
        }
        if (case.proto == Proto::H2raw) == case.frames.is_empty() {
            return Err(invalid(format!(
                "case {}: `frames` go with proto h2raw",
                case.name
            )));
        }
    }
    Ok(area)
}

/// Every area file under `cases/`, sorted by name.
pub fn area_files() -> Result<Vec<PathBuf>, SpecError> {
    let dir = corpus_dir().join("cases");
    let entries = std::fs::read_dir(&dir).map_err(|source| SpecError::Read {
        path: dir.clone(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Loads the area named `name` (`cases/<name>.yaml`).
pub fn load_area_named(name: &str) -> Result<AreaSpec, SpecError> {
    load_area(&corpus_dir().join("cases").join(format!("{name}.yaml")))
}

/// Expands `<<Nc>>` (a count and one character, e.g. `<<2000x>>`) into N copies of the
/// character, so cases about sizes stay readable. Used on paths, header values, bodies and
/// raw bytes.
pub fn expand(text: &str) -> String {
    static REPEAT: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = REPEAT.get_or_init(|| regex::Regex::new(r"<<(\d+)(.)>>").expect("constant regex"));
    re.replace_all(text, |caps: &regex::Captures<'_>| {
        let count: usize = caps[1].parse().unwrap_or(0);
        caps[2].repeat(count)
    })
    .into_owned()
}
