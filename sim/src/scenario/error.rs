//! Scenario errors that point at the file, line and key.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub enum ScenarioError {
    Io {
        path: PathBuf,
        error: String,
    },
    At {
        path: PathBuf,
        line: usize,
        column: usize,
        key: String,
        message: String,
        snippet: String,
    },
}

/// 1-based line and column of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map(|p| offset - p).unwrap_or(offset + 1);
    (line, col)
}

impl ScenarioError {
    pub fn at(path: &Path, source: &str, span: Range<usize>, key: &str, message: String) -> Self {
        let (line, column) = line_col(source, span.start);
        let snippet = source
            .lines()
            .nth(line - 1)
            .unwrap_or("")
            .trim_end()
            .to_string();
        ScenarioError::At {
            path: path.to_path_buf(),
            line,
            column,
            key: key.to_string(),
            message,
            snippet,
        }
    }

    /// Turns a TOML/serde error into one naming the line and the key on it.
    pub fn from_toml(path: &Path, source: &str, e: &toml::de::Error) -> Self {
        let span = e.span().unwrap_or(0..0);
        let (line, _) = line_col(source, span.start);
        let text = source.lines().nth(line.saturating_sub(1)).unwrap_or("");
        // The key is what stands before `=` on that line, or the table header.
        let key = match text.split_once('=') {
            Some((k, _)) => k.trim().trim_start_matches('{').trim().to_string(),
            None => text
                .trim()
                .trim_matches(|c| c == '[' || c == ']')
                .to_string(),
        };
        let key = if let Some(field) = unknown_field(e.message()) {
            field
        } else {
            key
        };
        Self::at(path, source, span, &key, e.message().trim().to_string())
    }

    pub fn line(&self) -> Option<usize> {
        match self {
            ScenarioError::At { line, .. } => Some(*line),
            ScenarioError::Io { .. } => None,
        }
    }
}

fn unknown_field(msg: &str) -> Option<String> {
    let rest = msg.split("unknown field `").nth(1)?;
    Some(rest.split('`').next()?.to_string())
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScenarioError::Io { path, error } => {
                write!(f, "{}: cannot read: {error}", path.display())
            }
            ScenarioError::At {
                path,
                line,
                column,
                key,
                message,
                snippet,
            } => {
                write!(
                    f,
                    "{}:{line}:{column}: key `{key}`: {message}",
                    path.display()
                )?;
                if !snippet.is_empty() {
                    write!(f, "\n    {line} | {snippet}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ScenarioError {}
