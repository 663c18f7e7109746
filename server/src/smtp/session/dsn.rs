//! The DSN extension's parameters (RFC 3461 §4: RET and ENVID on MAIL, NOTIFY and ORCPT on
//! RCPT) and REQUIRETLS on MAIL (RFC 8689 §4).
//!
//! smtp-proto parses these already, but leniently: its xtext decoder takes `+4g` or a bare
//! `=`, it lets `NEVER` be followed by other NOTIFY values, and it decodes `+C3` to a Latin-1
//! character. So the values are taken again from the command line as the client sent it
//! and checked strictly here; smtp-proto's result only says which parameters are present.
//! A malformed value is `501 5.5.4` (RFC 3461 §4: syntax error in parameters), a DSN
//! parameter without EHLO or without DSN on offer `555 5.5.4` (RFC 5321 §4.1.1.11).

use smtp_proto::{
    MailFrom, RcptTo, MAIL_REQUIRETLS, MAIL_RET_FULL, MAIL_RET_HDRS, RCPT_NOTIFY_DELAY,
    RCPT_NOTIFY_FAILURE, RCPT_NOTIFY_NEVER, RCPT_NOTIFY_SUCCESS,
};

use super::extensions::Extension;
use super::{Reply, Session};
use crate::mail::dsn::xtext_decode;
use crate::mail::{EnvelopeDsn, Notify, Ret};

/// MAIL flags this file decides on (the generic parameter check lets them through).
pub(super) const MAIL_FLAGS: u64 = MAIL_RET_FULL | MAIL_RET_HDRS | MAIL_REQUIRETLS;
/// RCPT flags this file decides on.
pub(super) const RCPT_FLAGS: u64 =
    RCPT_NOTIFY_NEVER | RCPT_NOTIFY_SUCCESS | RCPT_NOTIFY_FAILURE | RCPT_NOTIFY_DELAY;

/// RFC 3461 §4.4: the ENVID value is at most 100 characters (as sent, xtext).
const MAX_ENVID: usize = 100;
/// An ORCPT address, decoded: no longer than a forward-path may be (RFC 5321 §4.5.3.1.3).
const MAX_ORCPT: usize = 256;

fn unsupported() -> Reply {
    Reply::new(555, (5, 5, 4), "Unsupported parameter")
}

fn invalid(param: &str) -> Reply {
    Reply::new(501, (5, 5, 4), format!("Invalid {param} parameter"))
}

impl Session {
    /// RET, ENVID and REQUIRETLS of MAIL FROM. REQUIRETLS over a session without TLS is
    /// `530 5.7.10` (RFC 8689 §4.1 / RFC 3463 "encryption needed"): it is not on offer
    /// there, but telling the client why is more useful than 555.
    pub(super) fn mail_dsn(
        &self,
        from: &MailFrom<String>,
        params: &[u8],
    ) -> Result<(EnvelopeDsn, bool), Reply> {
        let mut dsn = EnvelopeDsn::default();
        let dsn_flags = from.flags & (MAIL_RET_FULL | MAIL_RET_HDRS);
        if dsn_flags != 0 || from.env_id.is_some() {
            if !self.offers(Extension::Dsn) {
                return Err(unsupported());
            }
            dsn.ret = match dsn_flags {
                0 => None,
                MAIL_RET_FULL => Some(Ret::Full),
                MAIL_RET_HDRS => Some(Ret::Hdrs),
                _ => return Err(invalid("RET")),
            };
        }
        if from.env_id.is_some() {
            let raw = single_param(params, "ENVID").ok_or_else(|| invalid("ENVID"))?;
            if raw.is_empty() || raw.len() > MAX_ENVID {
                return Err(invalid("ENVID"));
            }
            dsn.envid = Some(xtext_decode(raw).ok_or_else(|| invalid("ENVID"))?);
        }
        let require_tls = from.flags & MAIL_REQUIRETLS != 0;
        if require_tls && !self.offers(Extension::RequireTls) {
            let esmtp = self.greeted.as_ref().is_some_and(|g| g.esmtp);
            return Err(match esmtp && !self.tls {
                true => Reply::new(530, (5, 7, 10), "REQUIRETLS needs a TLS session"),
                false => unsupported(),
            });
        }
        Ok((dsn, require_tls))
    }

    /// NOTIFY and ORCPT of RCPT TO.
    pub(super) fn rcpt_dsn(
        &self,
        to: &RcptTo<String>,
        params: &[u8],
    ) -> Result<(Notify, Option<String>), Reply> {
        if to.flags & RCPT_FLAGS == 0 && to.orcpt.is_none() {
            return Ok((Notify::default(), None));
        }
        if !self.offers(Extension::Dsn) {
            return Err(unsupported());
        }
        let notify = match to.flags & RCPT_FLAGS {
            0 => Notify::default(),
            _ => single_param(params, "NOTIFY")
                .and_then(Notify::parse)
                .ok_or_else(|| invalid("NOTIFY"))?,
        };
        let orcpt = match to.orcpt {
            None => None,
            Some(_) => {
                let raw = single_param(params, "ORCPT").ok_or_else(|| invalid("ORCPT"))?;
                let (kind, value) = raw.split_once(';').ok_or_else(|| invalid("ORCPT"))?;
                if !kind.eq_ignore_ascii_case("rfc822") {
                    return Err(invalid("ORCPT"));
                }
                let address = xtext_decode(value)
                    .filter(|a| !a.is_empty() && a.len() <= MAX_ORCPT)
                    .ok_or_else(|| invalid("ORCPT"))?;
                Some(address)
            }
        };
        Ok((notify, orcpt))
    }
}

/// The value of `KEY=value` among the parameters (the line's rest after the path, as
/// `session/path.rs` split it), as sent; `None` if it is missing or given more than once.
fn single_param<'t>(params: &'t [u8], key: &str) -> Option<&'t str> {
    let params = std::str::from_utf8(params).ok()?;
    let mut found = None;
    for word in params.split_ascii_whitespace() {
        let (k, v) = word.split_once('=').unwrap_or((word, ""));
        if k.eq_ignore_ascii_case(key) {
            if found.is_some() {
                return None;
            }
            found = Some(v);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::single_param;

    #[test]
    fn params_are_found_once() {
        let line = b" RET=HDRS envid=QQ+2B1\r\n";
        assert_eq!(single_param(line, "ENVID"), Some("QQ+2B1"));
        assert_eq!(single_param(line, "RET"), Some("HDRS"));
        assert_eq!(single_param(line, "A"), None);
        assert_eq!(single_param(b" NOTIFY=NEVER NOTIFY=DELAY", "NOTIFY"), None);
    }
}
