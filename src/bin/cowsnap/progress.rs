//! A progress line on stderr for long transfers, shown only when stderr is a
//! terminal and redrawn at most ten times a second.

use crate::size::format_size;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const REDRAW_EVERY: Duration = Duration::from_millis(100);

pub struct Progress {
    label: String,
    enabled: bool,
    last_draw: Option<Instant>,
    drawn: bool,
}

impl Progress {
    /// A progress line prefixed by `label`; silent unless stderr is a terminal.
    pub fn new(label: impl Into<String>) -> Progress {
        Progress {
            label: label.into(),
            enabled: std::io::stderr().is_terminal(),
            last_draw: None,
            drawn: false,
        }
    }

    /// Report `done` of `total` bytes; a `total` of 0 means unknown.
    pub fn update(&mut self, done: u64, total: u64) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        let finished = total != 0 && done >= total;
        if !finished
            && self
                .last_draw
                .is_some_and(|t| now.duration_since(t) < REDRAW_EVERY)
        {
            return;
        }
        self.last_draw = Some(now);
        let line = if total == 0 {
            format!("{}: {}", self.label, format_size(done))
        } else {
            let percent = (done as u128 * 100 / total as u128).min(100);
            format!(
                "{}: {} / {} ({percent}%)",
                self.label,
                format_size(done),
                format_size(total)
            )
        };
        // Clear to end of line: the new text may be shorter than the old.
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line}\x1b[K");
        let _ = err.flush();
        self.drawn = true;
    }

    /// End the progress line so later output starts on a fresh line.
    pub fn finish(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
