//! `ConfigError`: one configuration problem, located by field path and (for files) line.
//!
//! Display is `FILE:LINE: field.path: message` for files and `field.path: message` for
//! inline text, matching what operators grep for in `--mode validate` output.

use std::fmt;

/// The message of a field Baton parses but does not implement.
const UNSUPPORTED: &str = "not supported by Baton yet";

/// A configuration error. `path` uses proto field names (`static_resources.clusters[0].name`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    /// The config file, when the text came from one.
    pub file: Option<String>,
    /// 1-based line in `file` (or in inline text) where `path` starts, when it was found.
    pub line: Option<usize>,
    /// Dotted field path; empty for whole-document problems (unreadable file, syntax).
    pub path: String,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

impl ConfigError {
    /// An error at a field path (file and line are filled in by the loader).
    pub fn at(path: impl Into<String>, message: impl fmt::Display) -> Self {
        Self {
            file: None,
            line: None,
            path: path.into(),
            message: message.to_string(),
        }
    }

    /// An error about a field Baton parses but does not implement yet.
    pub fn unsupported(path: impl Into<String>) -> Self {
        Self::at(path, UNSUPPORTED)
    }

    /// Whether this says a field is not implemented ([`Self::unsupported`]).
    pub fn is_unsupported(&self) -> bool {
        self.message == UNSUPPORTED
    }

    fn render(&self) -> String {
        let mut out = String::new();
        if let Some(file) = &self.file {
            out.push_str(file);
            // Inline text has no name, so a line only makes sense with a file.
            if let Some(line) = self.line {
                out.push(':');
                out.push_str(&line.to_string());
            }
            out.push_str(": ");
        }
        if !self.path.is_empty() {
            out.push_str(&self.path);
            out.push_str(": ");
        }
        out.push_str(&self.message);
        out
    }
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, ConfigError>;
