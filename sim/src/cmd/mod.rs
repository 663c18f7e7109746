//! The `mailsim` subcommands that grew past a few lines (the binary's own modules: the
//! library does the work, these print it).

pub mod check;
pub mod output;
pub mod shrink;
pub mod trace;
