//! Outbound DKIM signing (RFC 6376, RFC 8463) and the completion of submitted mail
//! (RFC 6409 §8): what a message submission agent does to a message between the client's
//! end of data and the queue.
//!
//! - [`keys`]: the `[[dkim]]` keys loaded from their PEM ([`Signer::from_config`]), and
//!   the selector TXT record each needs published ([`SigningKey::dns_record`]).
//! - [`signer`]: [`Signer::sign`], relaxed/relaxed signatures with the time given by the
//!   caller: mail-auth's own `sign` reads `SystemTime`, which the simulation must never see.
//! - [`submission`]: [`Submission`], the [`Deliver`](crate::mail::Deliver) wrapper the
//!   server puts around its sink: mail submitted by an authenticated client gets
//!   `Message-ID:` and `Date:` when it lacks them, then one signature per key of its
//!   `From:` domain; everything else passes through untouched.
//!
//! Keys are checked when the server starts ([`Signer::from_config`]; `config` cannot call
//! this module, which reads `config`'s types, without a module cycle), and by the scenario
//! loader, so a bad key is an error naming `dkim[i]` before any mail is accepted.

mod keys;
mod signer;
mod submission;

#[cfg(test)]
mod tests;

pub use keys::{DkimKeyError, SigningKey};
pub use signer::{Signer, SIGNED_HEADERS};
pub use submission::Submission;
