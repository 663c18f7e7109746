//! The world's DNS: one authoritative server that *is* the whole DNS of the simulation.
//!
//! The mail server resolves MX, A, AAAA, TXT and PTR records through its `Env`; in the sim
//! those lookups become real DNS messages over turmoil's simulated UDP, answered by
//! hickory-server's `Catalog`. Going through the wire format (rather than a map lookup) keeps
//! the sim honest: packet loss, partitions, latency and malformed replies reach DNS exactly as
//! they reach SMTP, and the trace shows every question and answer.
//!
//! - [`zone`]: zone data from the scenario file ([`ZoneSpec`] → [`Zones`]) and DNS faults.
//! - [`server`]: [`serve`], the UDP server run inside one turmoil host.
//! - [`client`]: [`query`], one stub-resolver query from any host.
//! - [`dkim`]: the server's DKIM selector records, published in the zones.

pub mod client;
pub mod dkim;
mod record;
pub mod server;
pub mod zone;

#[cfg(test)]
mod tests;

pub use client::query;
pub use server::serve;
pub use zone::{build_zones, DnsFault, FaultKind, ZoneError, ZoneSpec, Zones};

use hickory_proto::rr::Name;

/// A domain name as the server crate and the trace want it: lower-case, no trailing dot.
/// The root is the empty string (so a null MX's exchange is `""`).
pub(crate) fn name_to_string(name: &Name) -> String {
    let mut s = name.to_ascii().to_ascii_lowercase();
    while s.ends_with('.') {
        s.pop();
    }
    s
}

/// Like [`name_to_string`] but the root is `.`, so a trace line never has an empty field.
pub(crate) fn name_for_trace(name: &Name) -> String {
    let s = name_to_string(name);
    if s.is_empty() {
        ".".to_string()
    } else {
        s
    }
}

/// A TXT record's character-strings concatenated, as SPF (RFC 7208 §3.3) and DKIM readers
/// do; invalid UTF-8 becomes U+FFFD rather than an error (a broken record is the policy
/// reader's problem, not the resolver's).
pub(crate) fn txt_to_string(txt: &hickory_proto::rr::rdata::TXT) -> String {
    let bytes: Vec<u8> = txt
        .txt_data
        .iter()
        .flat_map(|s| s.iter().copied())
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}
