//! What "fails the same way" means for the shrinker.
//!
//! A failure's text names the message, actor and mailbox it is about ("invariant: message
//! 17.1.abc (acknowledged to s3) is in mailbox alice@example.org"); a smaller scenario that
//! loses *another* message has found the same bug. So a failure's *kind* is its
//! expectation with those names masked, and a run's signature is the set of its kinds.

use std::collections::BTreeSet;

use crate::check::Failure;
use crate::runner::Outcome;

/// The failure kinds of one run, and the one the shrink must keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// The kind of the run's first failure: the one its report leads with.
    pub primary: String,
    /// Every kind the run showed.
    pub kinds: BTreeSet<String>,
}

impl Signature {
    /// The signature of a failed run; `None` for a passed run or a file that did not load.
    pub fn of(outcome: &Outcome) -> Option<Signature> {
        if outcome.load_error.is_some() {
            return None;
        }
        let first = outcome.failures.first()?;
        Some(Signature {
            primary: kind(first),
            kinds: outcome.failures.iter().map(kind).collect(),
        })
    }

    /// A candidate fails the same way when it still shows the primary kind and no kind the
    /// original run did not (a smaller file that *also* breaks something else is another
    /// bug report, not this one made smaller).
    pub fn matched_by(&self, outcome: &Outcome) -> bool {
        Signature::of(outcome)
            .is_some_and(|s| s.kinds.contains(&self.primary) && s.kinds.is_subset(&self.kinds))
    }
}

/// A failure's expectation with the names in it masked: words with a digit (message ids,
/// actor names like `s3`, addresses with ports), addresses (`@`, `<...>`), and the word
/// after "message".
pub fn kind(f: &Failure) -> String {
    let mut out = Vec::new();
    let mut after_message = false;
    for word in f.expectation.split_whitespace() {
        let masked = after_message
            || word
                .chars()
                .any(|c| c.is_ascii_digit() || c == '@' || c == '<');
        after_message = word == "message";
        out.push(if masked { "*" } else { word });
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(expectation: &str) -> Failure {
        Failure {
            expectation: expectation.into(),
            found: String::new(),
            trace_line: None,
        }
    }

    #[test]
    fn names_are_masked_but_the_invariant_is_kept() {
        let a = kind(&failure(
            "invariant: message 17.1.abc (acknowledged to s3) is in mailbox alice@example.org",
        ));
        let b = kind(&failure(
            "invariant: message 2.9.x (acknowledged to s1) is in mailbox bob@example.org",
        ));
        assert_eq!(a, b);
        assert_eq!(a, "invariant: message * (acknowledged to * is in mailbox *");
        let dup = kind(&failure(
            "invariant: message 2.9.x is delivered to <a@b> once (twice only across a crash)",
        ));
        assert_ne!(a, dup);
    }
}
