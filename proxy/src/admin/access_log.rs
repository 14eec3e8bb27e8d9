//! Admin access logs (`admin.access_log`, and the deprecated `admin.access_log_path` in
//! Envoy's default format): one entry per admin request, as Envoy's admin connection
//! manager writes them.

use std::sync::Arc;
use std::time::Instant;

use http::{HeaderMap, Method, StatusCode, Uri, Version};

use crate::access_log::{AccessLoggers, FormatInput, StreamInfo};
use crate::base::conn_info::ConnInfo;

/// What an entry needs of the request, copied before the handler takes it.
pub(super) struct LoggedRequest {
    conn: Arc<ConnInfo>,
    started: Instant,
    version: Version,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl LoggedRequest {
    /// Notes `req` on `conn` (call only when admin has loggers).
    pub(super) fn new<B>(conn: &Arc<ConnInfo>, req: &http::Request<B>) -> Self {
        Self {
            conn: Arc::clone(conn),
            started: Instant::now(),
            version: req.version(),
            method: req.method().clone(),
            uri: req.uri().clone(),
            headers: req.headers().clone(),
        }
    }

    /// Writes the entry of its answer (`status`, `body_len` bytes).
    pub(super) fn answered(self, loggers: &AccessLoggers, status: StatusCode, body_len: usize) {
        let mut info = StreamInfo::new(self.conn, Some(self.version));
        info.start = self.started;
        info.response_code = Some(status.as_u16());
        info.bytes_sent = body_len as u64;
        let elapsed = self.started.elapsed();
        info.request_complete = Some(elapsed);
        info.first_downstream_tx = Some(elapsed);
        info.last_downstream_tx = Some(elapsed);
        let input = FormatInput {
            method: Some(&self.method),
            uri: Some(&self.uri),
            request_headers: Some(&self.headers),
            ..FormatInput::new(&info)
        };
        loggers.log(&input);
    }
}
