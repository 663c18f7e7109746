//! What a person watching sees (issues #12 item 3, #14 item 1): a progress bar on stderr
//! while scenarios or sweep pairs run, and a coloured closing line.
//!
//! The bar is for a terminal only: when stderr is not one, or `CI` is set (CI logs keep
//! every redraw as a line), progress is a plain line every tenth of the way, as a log
//! wants it. Colour follows <https://no-color.org>: never when `NO_COLOR` is set to
//! anything non-empty, and never when stdout is not a terminal, so the closing
//! `N passed, M failed` line a CI reads stays plain.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar on stderr, or plain progress lines.
pub struct Progress {
    bar: Option<ProgressBar>,
    what: &'static str,
    plain_lines: bool,
}

impl Progress {
    /// `what` names the unit: "runs", "scenarios"; `plain_lines`: print a line every tenth
    /// of the way when there is no bar (a sweep's log wants them, a plain run's list of
    /// verdicts does not).
    pub fn new(what: &'static str, plain_lines: bool) -> Progress {
        let live = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        let bar = live.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg} (eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(what);
            bar
        });
        Progress {
            bar,
            what,
            plain_lines,
        }
    }

    /// Called after each run with how many are done of how many.
    pub fn update(&self, done: u64, total: u64) {
        match &self.bar {
            Some(bar) => {
                if bar.length() != Some(total) {
                    bar.set_length(total);
                }
                bar.set_position(done);
            }
            None => {
                if self.plain_lines && total >= 10 && done.is_multiple_of(total / 10) {
                    eprintln!("  {done}/{total} {}", self.what);
                }
            }
        }
    }

    /// Clears the bar before the results are printed.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Whether stdout may be coloured.
pub fn colour() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stdout().is_terminal()
}

/// `N passed, M failed`: green when nothing failed, red otherwise, when colour is allowed.
pub fn summary(passed: u64, failed: u64, colour: bool) -> String {
    let line = format!("{passed} passed, {failed} failed");
    if !colour {
        return line;
    }
    let code = if failed == 0 { "32" } else { "31" };
    format!("\x1b[1;{code}m{line}\x1b[0m")
}

/// `PASS`/`FAIL` at the start of a verdict line, coloured like the summary.
pub fn verdict(line: &str, colour: bool) -> String {
    match (colour, line.split_at_checked(4)) {
        (true, Some(("PASS", rest))) => format!("\x1b[32mPASS\x1b[0m{rest}"),
        (true, Some(("FAIL", rest))) => format!("\x1b[31mFAIL\x1b[0m{rest}"),
        _ => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_when_allowed() {
        assert_eq!(summary(3, 0, false), "3 passed, 0 failed");
        assert_eq!(summary(3, 0, true), "\x1b[1;32m3 passed, 0 failed\x1b[0m");
        assert!(summary(1, 2, true).starts_with("\x1b[1;31m"));
        assert_eq!(verdict("PASS  x", false), "PASS  x");
        assert_eq!(verdict("FAIL  x", true), "\x1b[31mFAIL\x1b[0m  x");
        assert_eq!(verdict("  error", true), "  error");
    }
}
