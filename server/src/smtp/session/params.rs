//! The shape of the MAIL and RCPT parameters we know: whether a keyword comes with a value.
//!
//! RFC 5321 §4.1.1.11 makes `555` the answer to a parameter the server "does not recognize
//! or cannot implement". A parameter of an extension we offer is neither, even when it is
//! written wrong, so a keyword that needs a value sent without one (`SIZE`: RFC 1870 §3
//! `"SIZE=" size-value`; `BODY`: RFC 6152 §2; `RET`, `ENVID`, `NOTIFY`, `ORCPT`: RFC 3461
//! §4.1–§4.4) or a keyword that takes none sent with one (`SMTPUTF8=`: RFC 6531 §3.4, "the
//! parameter does not accept a value") is a syntax error in parameters: `501 5.5.4` (RFC
//! 5321 §4.2.2), exactly as a bad value (`SIZE=abc`, `BODY=9BIT`, `RET=ALL`) already is.
//! smtp-proto only knows `KEY=value` words and calls these unknown (555); Postfix 3.7, which
//! compares whole `KEY=` prefixes, says 555 too ("Unsupported option"), where the RFCs'
//! reply codes say 501.
//!
//! A keyword of an extension that is not on offer (anything after HELO, say) is left alone:
//! that one is not recognised here, and stays 555.

use super::extensions::Extension;
use super::{Reply, Session};

/// A keyword with or without its value (`true`: `KEY=value`).
type Shape = (&'static str, bool, Extension);

/// The MAIL parameters whose shape is checked here.
pub(super) const MAIL: &[Shape] = &[
    ("SIZE", true, Extension::Size),
    ("BODY", true, Extension::EightBitMime),
    ("RET", true, Extension::Dsn),
    ("ENVID", true, Extension::Dsn),
    ("SMTPUTF8", false, Extension::SmtpUtf8),
];

/// The RCPT parameters whose shape is checked here.
pub(super) const RCPT: &[Shape] = &[
    ("NOTIFY", true, Extension::Dsn),
    ("ORCPT", true, Extension::Dsn),
];

impl Session {
    /// `501 5.5.4 Invalid KEY parameter` for the first parameter of `params` (the line's rest
    /// after the path) whose keyword is one of `shapes`, on offer, and written without the
    /// value it needs or with one it does not take.
    pub(super) fn parameter_shapes(&self, params: &[u8], shapes: &[Shape]) -> Result<(), Reply> {
        let params = super::commands::strip_line_ending(params);
        for word in params.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
            let (key, has_value) = match word.iter().position(|&b| b == b'=') {
                Some(eq) => (&word[..eq], true),
                None => (word, false),
            };
            let shape = shapes
                .iter()
                .find(|(k, _, _)| k.as_bytes().eq_ignore_ascii_case(key));
            if let Some((name, wants_value, extension)) = shape {
                if has_value != *wants_value && self.offers(extension.clone()) {
                    return Err(Reply::new(
                        501,
                        (5, 5, 4),
                        format!("Invalid {name} parameter"),
                    ));
                }
            }
        }
        Ok(())
    }
}
