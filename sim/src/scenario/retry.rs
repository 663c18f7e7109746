//! An actor's retry schedule: a sender that retries on 4xx like a real MTA.
//!
//! ```toml
//! retry = { after_secs = 300, attempts = 5 }             # a fixed backoff
//! retry = { after_secs = [300, 600, 1200], attempts = 5 } # growing, the last one repeats
//! ```
//!
//! **What an attempt is.** One connection running the actor's steps from the start: a route
//! lookup (the MX again, as Postfix looks it up again for every delivery attempt), the
//! connect, the greeting, then every step in order.
//!
//! **What defers.** Postfix's smtp client defers a message (keeps it queued and tries the
//! whole transaction again later) when the server answers 4xx to the greeting, `MAIL`,
//! `RCPT`, `DATA` or the end of the data, and when it says `421` to anything (RFC 5321 §3.8:
//! the server is closing the channel). The actor does the same, **unless the step's own
//! `expect` asked for that reply**: a script that expects `451` is testing the deferral, not
//! retrying past it. A deferral is not a failure of the attempt that got it: the actor sends
//! `QUIT` (politely, as Postfix does, and reads the `221` if one comes), closes, waits the
//! backoff in simulated time, and starts the next attempt. Replies that a pipelined group
//! still owes after the deferring one are read and not checked (a `554 no valid recipients`
//! to `DATA` after a `451` to the only `RCPT` is the deferral's echo, not a new refusal).
//!
//! **What does not.** A 5xx, an expectation failure that is not a deferral, a `raw` step's
//! replies (other than `421`) and lost connections behave exactly as without `retry`: they
//! are recorded as failures and never retried. Without `retry` a 4xx is an ordinary reply,
//! checked against `expect` as before.
//!
//! **Whole transactions.** A deferral replays the whole script, every recipient included;
//! Postfix would deliver to the recipients the server accepted and retry only the deferred
//! ones. Scripts that mix accepted and deferred recipients in one transaction therefore
//! replay the accepted ones too.
//!
//! **Running out.** `attempts` counts every attempt, the first included (Postfix counts its
//! deliveries the same way in its logs). When the last one is deferred too, the actor gives
//! up: it fails with the last deferring reply and the attempt count, unless an `[[expect]]`
//! for it says `gave_up = true` (then it is that expectation that must hold; see `Expect`).
//! `[[expect]] attempts = N` checks how many attempts the actor made, exactly.

use std::time::Duration;

use serde::Deserialize;

/// The most attempts a schedule may have: far beyond any MTA's (Postfix's 5-day queue
/// lifetime at its 4000 s maximal backoff is ~110), small enough that a typo is caught.
pub const MAX_ATTEMPTS: u32 = 1000;

/// `[[actor]] retry = { ... }` (see the module docs).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Simulated seconds between a deferral and the next attempt: one number for a fixed
    /// backoff, or a list for each retry in turn, its last entry repeated (Postfix's
    /// backoff grows from `minimal_backoff_time` to `maximal_backoff_time` between queue
    /// runs; a list writes such a schedule out).
    pub after_secs: Backoff,
    /// How many attempts in all, the first included: at least 1.
    pub attempts: u32,
}

/// `after_secs = 300` or `after_secs = [300, 600, 1200]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Backoff {
    Fixed(f64),
    Steps(Vec<f64>),
}

impl Retry {
    /// What serde cannot check.
    pub fn check(&self) -> Result<(), String> {
        if self.attempts == 0 {
            return Err("attempts = 0: attempts counts the first attempt too, so it is at least 1 (1 = never retry)".into());
        }
        if self.attempts > MAX_ATTEMPTS {
            return Err(format!(
                "attempts = {}: at most {MAX_ATTEMPTS}",
                self.attempts
            ));
        }
        let steps: &[f64] = match &self.after_secs {
            Backoff::Fixed(s) => std::slice::from_ref(s),
            Backoff::Steps(v) => v,
        };
        if steps.is_empty() {
            return Err("after_secs = []: give at least one backoff".into());
        }
        if let Some(bad) = steps.iter().find(|s| !(0.0..=1e9).contains(*s)) {
            return Err(format!(
                "after_secs = {bad}: each backoff is 0 to 1e9 seconds"
            ));
        }
        let retries = self.attempts - 1;
        if let Backoff::Steps(v) = &self.after_secs {
            if v.len() > retries as usize {
                // Entries that can never be used are a miscount of what `attempts` means.
                return Err(format!(
                    "after_secs has {} entries but attempts = {} leaves {retries} retries (attempts counts the first attempt)",
                    v.len(),
                    self.attempts
                ));
            }
        }
        Ok(())
    }

    /// The wait before attempt `next` (2 for the first retry).
    pub fn backoff_before(&self, next: u32) -> Duration {
        let secs = match &self.after_secs {
            Backoff::Fixed(s) => *s,
            Backoff::Steps(v) => {
                let i = (next.saturating_sub(2) as usize).min(v.len().saturating_sub(1));
                v.get(i).copied().unwrap_or(0.0)
            }
        };
        Duration::from_secs_f64(secs.clamp(0.0, 1e9))
    }
}

/// What a reply answers, as far as deferring goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Greeting,
    Mail,
    Rcpt,
    /// The `DATA` command (its 354 or refusal).
    Data,
    /// The end of the message content.
    EndOfData,
    /// Anything else: EHLO, NOOP, STARTTLS, RSET, QUIT, raw bytes.
    Other,
}

impl Answer {
    /// The command a `send` or `pipeline` line is (its verb, any case).
    pub fn of_line(line: &str) -> Answer {
        let verb = line.split([' ', ':']).next().unwrap_or("");
        if verb.eq_ignore_ascii_case("MAIL") {
            Answer::Mail
        } else if verb.eq_ignore_ascii_case("RCPT") {
            Answer::Rcpt
        } else if verb.eq_ignore_ascii_case("DATA") && line.trim().len() == 4 {
            Answer::Data
        } else {
            Answer::Other
        }
    }
}

impl super::Step {
    /// What the n-th reply of this step answers.
    pub fn answer(&self, n: usize) -> Answer {
        if let Some(line) = &self.send {
            Answer::of_line(line)
        } else if let Some(lines) = &self.pipeline {
            lines.get(n).map_or(Answer::Other, |l| Answer::of_line(l))
        } else if self.data.is_some() {
            Answer::EndOfData
        } else {
            Answer::Other
        }
    }
}

/// Does `reply` to `answer` defer the message (see the module docs)? `reply` is as the
/// actor logs it: its lines joined with " / ", the code first.
pub fn defers(answer: Answer, reply: &str) -> bool {
    let code = reply.get(..3).unwrap_or("");
    if !(code.starts_with('4') && code.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    code == "421" || answer != Answer::Other
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn which_replies_defer() {
        assert!(defers(
            Answer::Rcpt,
            "451 4.7.1 Greylisted, see RFC 6647; please retry in 300 seconds"
        ));
        assert!(defers(Answer::Greeting, "421 4.3.2 busy"));
        assert!(defers(Answer::Greeting, "450 try later"));
        assert!(defers(Answer::Mail, "452 4.3.1 full"));
        assert!(defers(Answer::Data, "451 4.3.0 later"));
        assert!(defers(Answer::EndOfData, "451 4.7.1 temperror"));
        assert!(defers(Answer::Other, "421 4.7.0 closing"));
        // Neither a 4xx to EHLO (it is not about the message) nor a 5xx or a 2xx.
        assert!(!defers(Answer::Other, "450 4.7.1 no"));
        assert!(!defers(Answer::Rcpt, "550 5.1.1 no such user"));
        assert!(!defers(Answer::Rcpt, "250 2.1.5 Ok"));
        assert!(!defers(Answer::Rcpt, "4"));
        assert!(!defers(Answer::Rcpt, "4x1 odd"));
    }

    #[test]
    fn commands_by_verb() {
        assert_eq!(Answer::of_line("MAIL FROM:<a@b>"), Answer::Mail);
        assert_eq!(Answer::of_line("mail from:<a@b>"), Answer::Mail);
        assert_eq!(Answer::of_line("RCPT TO:<a@b>"), Answer::Rcpt);
        assert_eq!(Answer::of_line("DATA"), Answer::Data);
        assert_eq!(Answer::of_line("EHLO x"), Answer::Other);
        assert_eq!(Answer::of_line("MAILX"), Answer::Other);
        assert_eq!(Answer::of_line("DATAX"), Answer::Other);
    }

    #[test]
    fn backoff_steps_repeat_the_last() {
        let r = Retry {
            after_secs: Backoff::Steps(vec![300.0, 600.0]),
            attempts: 5,
        };
        let secs: Vec<u64> = (2..=5).map(|n| r.backoff_before(n).as_secs()).collect();
        assert_eq!(secs, [300, 600, 600, 600]);
        let fixed = Retry {
            after_secs: Backoff::Fixed(120.0),
            attempts: 3,
        };
        assert_eq!(fixed.backoff_before(3).as_secs(), 120);
    }

    /// A scenario with one actor whose `retry` line is `retry` (line 11 of the text).
    fn with_retry(retry: &str) -> Result<crate::scenario::LoadedScenario, String> {
        with_expect(retry, "completed = true")
    }

    /// The same, its one `[[expect]]` (from line 13) about the actor saying `expect`.
    fn with_expect(retry: &str, expect: &str) -> Result<crate::scenario::LoadedScenario, String> {
        let text = format!(
            r#"[server]
hostname = "mx.example.org"
domains = ["example.org"]
accounts = ["bob@example.org"]

[[actor]]
name = "s"
address = "203.0.113.10"
target = "192.0.2.1:25"
steps = [{{ send = "QUIT", expect = 221 }}]
{retry}

[[expect]]
actor = "s"
{expect}
"#
        );
        crate::scenario::parse(Path::new("retry.toml"), "retry".into(), text)
            .map_err(|e| e.to_string())
    }

    fn error_of(retry: &str) -> String {
        match with_retry(retry) {
            Ok(_) => panic!("{retry:?} was accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn valid_schedules_load() {
        let s = with_retry("retry = { after_secs = 300, attempts = 5 }").unwrap();
        let r = s.scenario.actor[0]
            .retry
            .as_ref()
            .unwrap()
            .get_ref()
            .clone();
        assert_eq!(r.after_secs, Backoff::Fixed(300.0));
        assert_eq!(r.attempts, 5);
        let s = with_retry("retry = { after_secs = [300, 600.5], attempts = 3 }").unwrap();
        let r = s.scenario.actor[0]
            .retry
            .as_ref()
            .unwrap()
            .get_ref()
            .clone();
        assert_eq!(r.after_secs, Backoff::Steps(vec![300.0, 600.5]));
        with_retry("retry = { after_secs = 0, attempts = 1 }").unwrap();
    }

    #[test]
    fn zero_attempts_is_an_error_with_file_and_line() {
        let e = error_of("retry = { after_secs = 300, attempts = 0 }");
        assert!(e.starts_with("retry.toml:11:"), "{e}");
        assert!(e.contains("key `actor.retry`"), "{e}");
        assert!(e.contains("attempts = 0"), "{e}");
    }

    #[test]
    fn bad_backoffs_are_errors_with_file_and_line() {
        for (retry, what) in [
            (
                "retry = { after_secs = [], attempts = 2 }",
                "after_secs = []",
            ),
            (
                "retry = { after_secs = -1, attempts = 2 }",
                "after_secs = -1",
            ),
            (
                "retry = { after_secs = [1, 2, 3], attempts = 3 }",
                "leaves 2 retries",
            ),
            (
                "retry = { after_secs = 1, attempts = 5000 }",
                "at most 1000",
            ),
        ] {
            let e = error_of(retry);
            assert!(e.starts_with("retry.toml:11:"), "{retry}: {e}");
            assert!(e.contains(what), "{retry}: {e}");
        }
    }

    #[test]
    fn unknown_and_missing_keys_are_errors_with_file_and_line() {
        let e = error_of("retry = { after_secs = 300, attempts = 2, every = 5 }");
        assert!(e.starts_with("retry.toml:11:"), "{e}");
        assert!(e.contains("every"), "{e}");
        let e = error_of("retry = { after_secs = 300 }");
        assert!(e.starts_with("retry.toml:11:"), "{e}");
        assert!(e.contains("attempts"), "{e}");
    }

    #[test]
    fn impossible_attempt_expectations_are_errors_with_file_and_line() {
        let fixed = "retry = { after_secs = 300, attempts = 3 }";
        for (retry, expect, what) in [
            (fixed, "attempts = 4", "makes 1 to 3 attempts"),
            (fixed, "attempts = 0", "makes 1 to 3 attempts"),
            ("", "attempts = 2", "makes 1 to 1 attempts"),
            ("", "gave_up = true", "has no retry"),
            (fixed, "gave_up = true\nattempts = 2", "only after all 3"),
            (
                fixed,
                "gave_up = true\ncompleted = true",
                "cannot both hold",
            ),
        ] {
            let e = match with_expect(retry, expect) {
                Ok(_) => panic!("{retry:?} / {expect:?} was accepted"),
                Err(e) => e,
            };
            assert!(e.starts_with("retry.toml:13:"), "{expect}: {e}");
            assert!(e.contains("key `expect[0]`"), "{expect}: {e}");
            assert!(e.contains(what), "{expect}: {e}");
        }
        with_expect(fixed, "gave_up = true\nattempts = 3").unwrap();
        with_expect("", "attempts = 1").unwrap();
    }
}
