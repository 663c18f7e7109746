//! Policy: who may do what. Today the relay rule's networks ([`IpNet`], Postfix's
//! `mynetworks`); SPF/DKIM/DMARC, DNSBL, greylisting and rate limits land here, asked for by
//! the protocol sessions, never called from inside a parser.

mod network;

pub use network::IpNet;
