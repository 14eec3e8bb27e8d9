//! Process logging: `tracing` with the level from `-l/--log-level`, optional per-component
//! levels, plain or JSON lines, to stderr or `--log-path`. The bootstrap's
//! `application_log_config` can switch to JSON lines once it is loaded (as Envoy, lines
//! logged before that use the command line's format).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use tracing_subscriber::layer::{Layer, Layered, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

/// What the filter passes on to the line formatter.
type Filtered = Layered<EnvFilter, Registry>;
/// The line formatter, replaceable once the bootstrap is loaded.
type Formatter = Box<dyn Layer<Filtered> + Send + Sync>;

/// The installed formatter's handle and writer (unset until [`init`]).
static FORMATTER: OnceLock<(reload::Handle<Formatter, Filtered>, LogWriter)> = OnceLock::new();

/// A formatter writing plain or JSON lines to `writer`.
fn formatter(json: bool, writer: LogWriter) -> Formatter {
    let layer = fmt::layer()
        .with_thread_names(true)
        .with_target(true)
        .with_writer(writer);
    if json {
        Box::new(layer.json())
    } else {
        Box::new(layer.with_ansi(false))
    }
}

/// Switches the process log to JSON lines (`application_log_config.log_format.json_format`;
/// Baton's JSON lines have its own fields, not the configured ones).
pub fn use_json_lines() {
    if let Some((handle, writer)) = FORMATTER.get() {
        if let Err(e) = handle.reload(formatter(true, writer.clone())) {
            tracing::warn!(error = %e, "cannot switch the log to JSON lines");
        }
    }
}

use super::cli::{LogLevel, Options};

/// Envoy's default `--log-format`, shown in /server_info.
pub const DEFAULT_LOG_FORMAT: &str = "[%Y-%m-%d %T.%e][%t][%l][%n] [%g:%#] %v";

/// Installs the global subscriber. `BATON_LOG` (an EnvFilter directive) overrides the flags.
pub fn init(opts: &Options) -> anyhow::Result<()> {
    let level = match opts.log_level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error | LogLevel::Critical => "error",
        LogLevel::Off => "off",
    };
    let mut directives = level.to_string();
    if let Some(components) = &opts.component_log_level {
        // Checked at startup (cli_checks::check); Envoy components Baton has no module
        // for change nothing.
        for (component, lvl) in
            super::cli_checks::component_levels(components).map_err(|e| anyhow::anyhow!(e))?
        {
            let target = match component {
                "upstream" | "pool" | "dns" | "hc" | "health_checker" => "baton_proxy::upstream",
                "http" | "http2" | "router" | "rds" | "filter" => "baton_proxy::http",
                "connection" | "conn_handler" => "baton_proxy::listener",
                "admin" => "baton_proxy::admin",
                "main" | "config" | "init" | "runtime" => "baton_proxy::server",
                _ => continue,
            };
            let lvl = match lvl {
                "warning" => "warn",
                "critical" => "error",
                other => other,
            };
            directives.push_str(&format!(",{target}={lvl}"));
        }
    }
    let filter = match std::env::var("BATON_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::try_new(v)?,
        _ => EnvFilter::try_new(directives)?,
    };
    let json = opts.log_format.as_deref() == Some("json");
    let sink = match &opts.log_path {
        Some(path) => Sink::File(Arc::new(Mutex::new(
            OpenOptions::new().create(true).append(true).open(path)?,
        ))),
        None => Sink::Stderr,
    };
    let writer = LogWriter {
        sink,
        escaped: opts.log_format_escaped,
    };
    let (layer, handle) = reload::Layer::new(formatter(json, writer.clone()));
    tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot install logger: {e}"))?;
    let _ = FORMATTER.set((handle, writer));
    Ok(())
}

/// Where log lines go.
#[derive(Clone)]
enum Sink {
    Stderr,
    File(Arc<Mutex<File>>),
}

/// The log writer: one formatted event per `write`, optionally with control characters
/// escaped C-style (`--log-format-escaped`) so every event stays on one line.
#[derive(Clone)]
struct LogWriter {
    sink: Sink,
    escaped: bool,
}

impl LogWriter {
    fn write_raw(&self, bytes: &[u8]) -> std::io::Result<()> {
        match &self.sink {
            Sink::Stderr => std::io::stderr().lock().write_all(bytes),
            Sink::File(file) => match file.lock() {
                Ok(mut f) => f.write_all(bytes),
                Err(poisoned) => poisoned.into_inner().write_all(bytes),
            },
        }
    }
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.escaped {
            self.write_raw(&escape_event(buf))?;
        } else {
            self.write_raw(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Escapes control characters in one formatted event, keeping its final newline.
fn escape_event(event: &[u8]) -> Vec<u8> {
    let (body, newline) = match event.strip_suffix(b"\n") {
        Some(body) => (body, true),
        None => (event, false),
    };
    let mut out = Vec::with_capacity(event.len() + 8);
    for &b in body {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x0b => out.extend_from_slice(b"\\v"),
            0x0c => out.extend_from_slice(b"\\f"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x07 => out.extend_from_slice(b"\\a"),
            _ => out.push(b),
        }
    }
    if newline {
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escaping_keeps_the_final_newline_only() {
        assert_eq!(super::escape_event(b"a\nb\tc\n"), b"a\\nb\\tc\n".to_vec());
        assert_eq!(super::escape_event(b"plain"), b"plain".to_vec());
    }
}
