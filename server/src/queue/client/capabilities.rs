//! What the peer said it can do, from its EHLO (or HELO) reply.

use smtp_proto::{
    EhloResponse, EXT_8BIT_MIME, EXT_BINARY_MIME, EXT_CHUNKING, EXT_DSN, EXT_ENHANCED_STATUS_CODES,
    EXT_PIPELINING, EXT_REQUIRE_TLS, EXT_SIZE, EXT_SMTP_UTF8, EXT_START_TLS,
};

use crate::smtp::Reply;

/// The peer's service extensions (RFC 5321 §4.1.1.1), as far as the client uses them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// EHLO was accepted. After a HELO fallback every extension below is off.
    pub esmtp: bool,
    /// The first word of the EHLO/HELO reply: the name the peer gives itself.
    pub hostname: String,
    /// RFC 2920.
    pub pipelining: bool,
    /// RFC 1870: `Some(0)` is SIZE without a fixed limit, `Some(n)` a limit of n octets.
    pub size: Option<u64>,
    /// RFC 6152.
    pub eight_bit_mime: bool,
    /// RFC 6531.
    pub smtputf8: bool,
    /// RFC 3207. Reported only: the upgrade is [`super::Client::starttls`], driven by the caller.
    pub starttls: bool,
    /// RFC 2034.
    pub enhanced_status_codes: bool,
    /// RFC 3461: NOTIFY/ORCPT/RET/ENVID are passed on, and no "relayed" DSN is owed.
    pub dsn: bool,
    /// RFC 8689: a REQUIRETLS message may be handed to this peer (over TLS).
    pub require_tls: bool,
    /// RFC 3030 CHUNKING: the message goes out with BDAT instead of DATA.
    pub chunking: bool,
    /// RFC 3030 BINARYMIME: binary content goes out as is (with BDAT, `BODY=BINARYMIME`).
    pub binarymime: bool,
}

impl Capabilities {
    /// The peer's fixed size limit, if it declared one (RFC 1870: 0 means none).
    pub fn size_limit(&self) -> Option<u64> {
        self.size.filter(|&n| n > 0)
    }

    /// After a HELO: no extensions at all.
    pub(crate) fn from_helo(reply: &Reply) -> Capabilities {
        Capabilities {
            hostname: first_word(reply),
            ..Capabilities::default()
        }
    }

    /// Parses a 250 EHLO reply with smtp-proto's EHLO parser, one keyword line at a time, so
    /// one line it cannot parse (an odd `AUTH=` form, a non-numeric SIZE) loses that line only,
    /// not every extension after it.
    pub(crate) fn from_ehlo(reply: &Reply) -> Capabilities {
        let mut caps = Capabilities {
            esmtp: true,
            hostname: first_word(reply),
            ..Capabilities::default()
        };
        let mut flags = 0u32;
        for line in reply.lines.iter().skip(1) {
            let wire = format!("250-x\r\n250 {line}\r\n");
            let Ok(parsed) = EhloResponse::parse(&mut wire.as_bytes().iter()) else {
                continue;
            };
            flags |= parsed.capabilities;
            if parsed.capabilities & EXT_SIZE != 0 {
                caps.size = Some(parsed.size as u64);
            }
        }
        caps.pipelining = flags & EXT_PIPELINING != 0;
        caps.eight_bit_mime = flags & EXT_8BIT_MIME != 0;
        caps.smtputf8 = flags & EXT_SMTP_UTF8 != 0;
        caps.starttls = flags & EXT_START_TLS != 0;
        caps.enhanced_status_codes = flags & EXT_ENHANCED_STATUS_CODES != 0;
        caps.dsn = flags & EXT_DSN != 0;
        caps.require_tls = flags & EXT_REQUIRE_TLS != 0;
        caps.chunking = flags & EXT_CHUNKING != 0;
        caps.binarymime = flags & EXT_BINARY_MIME != 0;
        caps
    }
}

fn first_word(reply: &Reply) -> String {
    reply
        .lines
        .first()
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ehlo(lines: &[&str]) -> Capabilities {
        Capabilities::from_ehlo(&Reply::multi(
            250,
            lines.iter().map(|s| s.to_string()).collect(),
        ))
    }

    #[test]
    fn parses_the_usual_postfix_ehlo() {
        let caps = ehlo(&[
            "mx.example.net",
            "PIPELINING",
            "SIZE 10240000",
            "VRFY",
            "ETRN",
            "STARTTLS",
            "ENHANCEDSTATUSCODES",
            "8BITMIME",
            "DSN",
            "SMTPUTF8",
            "CHUNKING",
            "REQUIRETLS",
        ]);
        assert_eq!(
            caps,
            Capabilities {
                esmtp: true,
                hostname: "mx.example.net".into(),
                pipelining: true,
                size: Some(10_240_000),
                eight_bit_mime: true,
                smtputf8: true,
                starttls: true,
                enhanced_status_codes: true,
                dsn: true,
                require_tls: true,
                chunking: true,
                binarymime: false,
            }
        );
        assert!(ehlo(&["mx", "CHUNKING", "BINARYMIME"]).binarymime);
        assert_eq!(caps.size_limit(), Some(10_240_000));
    }

    #[test]
    fn size_without_limit_and_odd_lines() {
        let caps = ehlo(&[
            "mx says hi",
            "size",
            "AUTH=LOGIN PLAIN",
            "X-WEIRD \u{1}\u{2}",
            "pipelining",
        ]);
        assert_eq!(caps.size, Some(0));
        assert_eq!(caps.size_limit(), None);
        assert!(caps.pipelining);
        assert_eq!(caps.hostname, "mx");

        let caps = ehlo(&["mx", "SIZE lots", "8BITMIME"]);
        assert_eq!(caps.size_limit(), None);
        assert!(caps.eight_bit_mime);

        let caps = ehlo(&[]);
        assert!(caps.esmtp && !caps.pipelining && caps.hostname.is_empty());
    }
}
