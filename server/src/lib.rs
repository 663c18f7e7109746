//! mailsim-server: a complete mail server that reaches the world only through [`env::Env`].
//!
//! Layout follows DESIGN.md: protocol sessions (`smtp/`), state (`store/`, `config/`), and
//! effects (`env/`). Nothing here knows whether it runs on real sockets or in the simulator.

pub mod admin;
pub mod auth;
pub mod cli;
pub mod config;
pub mod directory;
pub mod dkim;
pub mod durable;
pub mod env;
pub mod imap;
pub mod listener;
pub mod mail;
pub mod mime;
#[cfg(feature = "planted-bugs")]
pub mod planted;
pub mod policy;
pub mod pop3;
pub mod queue;
pub mod server;
pub mod smtp;
pub mod store;
pub mod tls;
