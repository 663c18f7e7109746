//! `mailsim trace FILE` (issue #14 item 4): reads a trace written by `run --trace-dir` and
//! prints it for a person — simulated time as days, hours, minutes and seconds, gaps of
//! more than a second marked (warps are where the story skips), the client's and the
//! server's lines told apart by arrows — narrowed to one host, one source, one message
//! (its queue or message id anywhere in the line), a time window or a regular expression.
//!
//! The trace format is `<secs>.<micros> <host> <source> <event>` (`sim/src/trace.rs`),
//! one event a line; a line that does not parse is printed as it is, never dropped.

use std::path::Path;
use std::process::ExitCode;

use regex::Regex;

/// What to keep (also the command's flags).
#[derive(Default, clap::Args)]
pub struct Filter {
    /// Only this host's lines (`server`, a remote's or an actor's name, `world`).
    #[arg(long)]
    pub host: Option<String>,
    /// Only this source (`smtp`, `queue`, `store`, `dns`, `remote`, `actor`, ...).
    #[arg(long)]
    pub source: Option<String>,
    /// Only lines naming this queue or message id.
    #[arg(long)]
    pub message: Option<String>,
    /// Only lines matching this regular expression.
    #[arg(long)]
    pub grep: Option<Regex>,
    /// From this simulated second on.
    #[arg(long)]
    pub from_secs: Option<f64>,
    /// Before this simulated second.
    #[arg(long)]
    pub until_secs: Option<f64>,
}

/// One parsed trace line.
#[derive(Debug, PartialEq)]
pub struct Line<'a> {
    pub secs: f64,
    pub host: &'a str,
    pub source: &'a str,
    pub event: &'a str,
}

pub fn parse(line: &str) -> Option<Line<'_>> {
    let mut rest = line.trim_start();
    let mut next = || {
        let (word, tail) = rest.split_once(' ')?;
        rest = tail.trim_start();
        Some(word)
    };
    let secs = next()?.parse().ok()?;
    let host = next()?;
    let source = next()?;
    Some(Line {
        secs,
        host,
        source,
        event: rest,
    })
}

impl Filter {
    pub fn keeps(&self, raw: &str, line: Option<&Line<'_>>) -> bool {
        if let Some(re) = &self.grep {
            if !re.is_match(raw) {
                return false;
            }
        }
        if let Some(m) = &self.message {
            if !raw.contains(m.as_str()) {
                return false;
            }
        }
        let Some(l) = line else {
            return self.host.is_none() && self.source.is_none();
        };
        self.host.as_deref().is_none_or(|h| l.host == h)
            && self.source.as_deref().is_none_or(|s| l.source == s)
            && self.from_secs.is_none_or(|f| l.secs >= f)
            && self.until_secs.is_none_or(|u| l.secs < u)
    }
}

/// `1d 02:03:04.005006` for simulated seconds.
pub fn clock(secs: f64) -> String {
    let micros = (secs * 1e6).round() as u64;
    let (s, us) = (micros / 1_000_000, micros % 1_000_000);
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    let day = if d > 0 {
        format!("{d}d ")
    } else {
        String::new()
    };
    format!("{day}{h:02}:{m:02}:{s:02}.{us:06}")
}

/// The pretty form of the kept lines of `text`.
pub fn render(text: &str, filter: &Filter) -> Vec<String> {
    let mut out = Vec::new();
    let mut last: Option<f64> = None;
    for raw in text.lines() {
        let parsed = parse(raw);
        if !filter.keeps(raw, parsed.as_ref()) {
            continue;
        }
        let Some(l) = parsed else {
            out.push(raw.to_string());
            continue;
        };
        if let Some(prev) = last {
            let gap = l.secs - prev;
            if gap >= 1.0 {
                out.push(format!("{:>15}   ... {} later", "", human(gap)));
            }
        }
        last = Some(l.secs);
        // `#3 C: MAIL FROM:<...>` (a session's client line) and `S:` (its server's reply).
        let event = l
            .event
            .replacen(" C: ", " → ", 1)
            .replacen(" S: ", " ← ", 1);
        let event = match event.strip_prefix("C: ") {
            Some(e) => format!("→ {e}"),
            None => match event.strip_prefix("S: ") {
                Some(e) => format!("← {e}"),
                None => event,
            },
        };
        out.push(format!(
            "{:>15}  {:<14} {:<8} {}",
            clock(l.secs),
            l.host,
            l.source,
            event
        ));
    }
    out
}

/// A gap as `2h 5m`, `4m 10s` or `3.2s`.
fn human(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..=59 => format!("{secs:.1}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {}m", s / 3600, s / 60 % 60),
        _ => format!("{}d {}h", s / 86_400, s / 3600 % 24),
    }
}

pub fn main(file: &Path, filter: Filter) -> ExitCode {
    // A trace file is the user's input, on the real disk.
    #[allow(clippy::disallowed_methods)]
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let lines = render(&text, &filter);
    for l in &lines {
        println!("{l}");
    }
    if lines.is_empty() {
        eprintln!("no line of {} matches", file.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "\
      0.000000 world        world  scenario x seed 1
      0.003000 server       smtp   #1 S: 220 mx.example.org ESMTP
      0.004000 alice        actor  C: EHLO a
    300.500000 server       queue  attempt 17672.abc to other.net: <b@other.net>
    300.501000 mx1.other.net remote C: MAIL FROM:<alice@example.org>
not a trace line
";

    #[test]
    fn lines_parse_into_time_host_source_event() {
        let l = parse("    300.500000 server       queue  attempt 1 to x").unwrap();
        assert_eq!(
            l,
            Line {
                secs: 300.5,
                host: "server",
                source: "queue",
                event: "attempt 1 to x"
            }
        );
        assert!(parse("not a trace line").is_none());
    }

    #[test]
    fn rendering_marks_gaps_and_directions_and_keeps_odd_lines() {
        let out = render(TRACE, &Filter::default());
        assert!(
            out[1].contains("server") && out[1].contains("#1 ← 220"),
            "{out:?}"
        );
        assert!(out[2].ends_with("→ EHLO a"), "{out:?}");
        assert!(out[3].contains("... 5m 0s later"), "{out:?}");
        assert!(
            out[4].trim_start().starts_with("00:05:00.500000"),
            "{out:?}"
        );
        assert_eq!(out.last().unwrap(), "not a trace line");
    }

    #[test]
    fn filters_narrow_by_host_message_window_and_regex() {
        let host = Filter {
            host: Some("mx1.other.net".into()),
            ..Filter::default()
        };
        let out = render(TRACE, &host);
        assert_eq!(out.len(), 1, "{out:?}");
        let msg = Filter {
            message: Some("17672.abc".into()),
            ..Filter::default()
        };
        assert_eq!(render(TRACE, &msg).len(), 1);
        let window = Filter {
            from_secs: Some(1.0),
            ..Filter::default()
        };
        // Two timed lines (no gap line before the first kept one) and the unparsable one
        // (no host/source filter to fail it).
        assert_eq!(render(TRACE, &window).len(), 3);
        let grep = Filter {
            grep: Some(Regex::new("EHLO|MAIL").unwrap()),
            ..Filter::default()
        };
        assert_eq!(render(TRACE, &grep).len(), 3);
    }

    #[test]
    fn clocks_count_days() {
        assert_eq!(clock(0.25), "00:00:00.250000");
        assert_eq!(clock(90_061.5), "1d 01:01:01.500000");
    }
}
