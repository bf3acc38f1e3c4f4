//! Usage errors from clap, reported as one line with clap's exit code (2).
//! Help and version requests are printed as clap prints them.

use crate::fail::{one_line, report};
use clap::error::ErrorKind;
use std::process::ExitCode;

pub fn exit_with(e: clap::Error) -> ExitCode {
    let code = ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // Nothing useful remains to do if the terminal is gone.
            let _ = e.print();
        }
        _ => report(&summarize(&e.render().to_string())),
    }
    code
}

/// Fold clap's multi-paragraph message into one line: the error itself, any
/// tips, and the usage string.
fn summarize(rendered: &str) -> String {
    let mut message = String::new();
    let mut usage = None;
    for paragraph in rendered.split("\n\n") {
        let paragraph = paragraph.trim();
        if paragraph.is_empty() || paragraph.starts_with("For more information") {
            continue;
        }
        if let Some(u) = paragraph.strip_prefix("Usage:") {
            usage = Some(one_line(u));
            continue;
        }
        let text = one_line(paragraph.strip_prefix("error:").unwrap_or(paragraph));
        if !message.is_empty() {
            message.push_str("; ");
        }
        message.push_str(&text);
    }
    match usage {
        Some(u) => format!("{message} (usage: {u})"),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::summarize;

    #[test]
    fn folds_paragraphs() {
        let text =
            "error: the following required arguments were not provided:\n  --size <SIZE>\n\n\
                    Usage: cowsnap volume create --size <SIZE> <POOL> <VOLUME>\n\n\
                    For more information, try '--help'.\n";
        assert_eq!(
            summarize(text),
            "the following required arguments were not provided: --size <SIZE> \
             (usage: cowsnap volume create --size <SIZE> <POOL> <VOLUME>)"
        );
    }
}
