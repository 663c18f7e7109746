//! mailsim: the deterministic simulated world around the mail server, the scenario runner
//! and the `mailsim` CLI.
//!
//! scenario (TOML model) → world (turmoil hosts: DNS, server, actors) → trace → check (the
//! scenario's expectations) + invariants (what holds in every run) → runner

pub mod actor;
pub mod certs;
pub mod check;
pub mod clock;
pub mod consistency;
pub mod dkim;
pub mod dns;
pub mod env;
pub mod invariants;
pub mod remote;
pub mod runner;
pub mod scenario;
pub mod shrink;
pub mod trace;
pub mod world;
