//! Outbound mail: the durable queue, its scheduler, the outbound SMTP client and delivery
//! status notifications (RFC 3464).
//!
//! - [`config`]: the `[queue]` section (retry schedule, lifetime, delay warnings, limits).
//! - [`store`]: queued messages and per-recipient state on the Env filesystem, crash-safe.
//! - [`schedule`]: which recipient is due next — O(log n), never a scan.
//! - [`client`]: the outbound SMTP client over any Env stream.
//! - [`dsn`]: failure and delay DSNs built with mail-builder.
//! - [`deliver`]: the one local/remote split (mailboxes and the queue) for accepted mail and DSNs.
//! - [`route`]: where mail for a domain goes (RFC 5321 §5: MX, implicit MX, null MX).
//! - [`tls`]: opportunistic STARTTLS for outbound sessions (rustls, no certificate checks).

pub mod client;
pub mod config;
pub mod deliver;
pub mod dsn;
pub mod route;
pub mod runner;
pub mod schedule;
pub mod store;
pub mod tls;

pub use config::QueueConfig;
