//! Access logs: loggers built once per connection-manager config from
//! `[model::AccessLog]`, a formatter shared with header substitutions, and background
//! sinks. `AccessLoggers::log` formats on the calling thread and hands the line to the
//! sink's writer thread, so the request path never blocks on I/O.

pub mod filter;
pub mod format;
mod fs_stats;
mod operators;
pub mod sink;
pub mod stream_info;
mod tls_operators;

use std::sync::Arc;

use baton_config::model::{AccessLog, AccessLogFilter, AccessLogFormat, AccessLogType};

pub(crate) use filter::uuid_integer;
pub use format::FormatInput;
pub use fs_stats::register as register_filesystem_stats;
pub use sink::{reopen_files, SinkError};
pub use stream_info::{RequestHead, ResponseFlag, ResponseFlags, StreamInfo};

/// One configured logger: a format and a destination.
#[derive(Debug)]
struct Logger {
    filter: Option<AccessLogFilter>,
    format: AccessLogFormat,
    omit_empty_values: bool,
    sink: Arc<sink::Sink>,
}

/// The loggers of one connection manager (or listener), in config order.
#[derive(Debug, Default)]
pub struct AccessLoggers {
    loggers: Vec<Logger>,
    /// What the entries are (`log_type_filter`).
    log_type: Option<AccessLogType>,
}

impl AccessLoggers {
    /// Builds loggers of entries of `log_type`, opening (or sharing) their sinks.
    pub fn new(configs: &[AccessLog], log_type: AccessLogType) -> Result<Self, SinkError> {
        let loggers = configs
            .iter()
            .map(|c| {
                Ok(Logger {
                    filter: c.filter.clone(),
                    format: c.format.clone(),
                    omit_empty_values: c.omit_empty_values,
                    sink: sink::open(&c.sink)?,
                })
            })
            .collect::<Result<Vec<_>, SinkError>>()?;
        Ok(Self {
            loggers,
            log_type: Some(log_type),
        })
    }

    /// True when nothing is configured (callers skip collecting log data).
    pub fn is_empty(&self) -> bool {
        self.loggers.is_empty()
    }

    /// Formats one entry per logger and queues it for writing.
    pub fn log(&self, input: &FormatInput<'_>) {
        let log_type = self.log_type.unwrap_or(AccessLogType::NotSet);
        for logger in &self.loggers {
            if let Some(f) = &logger.filter {
                if !filter::matches(f, input, log_type) {
                    continue;
                }
            }
            let mut line = String::with_capacity(256);
            match &logger.format {
                AccessLogFormat::Text(t) => {
                    format::render_text_with(t, input, &mut line, logger.omit_empty_values)
                }
                AccessLogFormat::Json(fields) => {
                    format::render_json(fields, input, &mut line, logger.omit_empty_values)
                }
            }
            logger.sink.write_line(line.into_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::conn_info::ConnInfo;
    use baton_config::model::{AccessLogSink, FormatPart, FormatTemplate};

    #[test]
    fn file_logger_writes_lines() {
        let dir = std::env::temp_dir().join(format!("baton-al-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("a.log");
        let _ = std::fs::remove_file(&path);
        let cfg = AccessLog {
            filter: None,
            sink: AccessLogSink::File(path.clone()),
            omit_empty_values: false,
            format: AccessLogFormat::Text(FormatTemplate {
                parts: vec![FormatPart::Literal("hello\n".into())],
            }),
        };
        let loggers =
            AccessLoggers::new(&[cfg.clone(), cfg], AccessLogType::DownstreamEnd).expect("loggers");
        let conn = ConnInfo::plain(
            "127.0.0.1:1".parse().expect("addr"),
            "127.0.0.1:2".parse().expect("addr"),
        );
        let info = StreamInfo::new(Arc::new(conn), None);
        loggers.log(&FormatInput::new(&info));
        let mut content = String::new();
        for _ in 0..200 {
            content = std::fs::read_to_string(&path).unwrap_or_default();
            if content.len() >= 12 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(content, "hello\nhello\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
