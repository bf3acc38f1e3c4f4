//! Command failures, and how they reach stderr: as one line.

use std::fmt;

/// Why a command failed.
#[derive(Debug)]
pub enum CliError {
    /// The engine refused or failed.
    Engine(cowsnap::Error),
    /// A file the CLI itself reads or writes (input, output, stdout).
    Io {
        what: String,
        source: std::io::Error,
    },
    /// A problem the CLI detected itself.
    Message(String),
}

pub type CliResult<T> = Result<T, CliError>;

impl CliError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> CliError {
        CliError::Io {
            what: what.into(),
            source,
        }
    }
}

impl From<cowsnap::Error> for CliError {
    fn from(e: cowsnap::Error) -> CliError {
        CliError::Engine(e)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Engine(e) => write!(f, "{e}"),
            CliError::Io { what, source } => write!(f, "{what}: {source}"),
            CliError::Message(m) => f.write_str(m),
        }
    }
}

/// Print `message` as the single `cowsnap: error: ...` line scripts expect.
pub fn report(message: &str) {
    eprintln!("cowsnap: error: {}", one_line(message));
}

/// Collapse line breaks and runs of whitespace so a message stays on one line.
pub fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}
