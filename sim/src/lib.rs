//! mailsim: the deterministic simulated world around the mail server, the scenario runner
//! and the `mailsim` CLI.

pub mod clock;
pub mod trace;
