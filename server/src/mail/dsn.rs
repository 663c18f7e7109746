//! What the DSN extension (RFC 3461) and REQUIRETLS (RFC 8689) attach to an envelope: the
//! client's wishes about delivery status notifications, kept with the message from the
//! SMTP session through the queue file to the DSN and the next hop. Also xtext (RFC 3461
//! §4), the encoding ENVID and ORCPT travel in.

/// `RET=` (RFC 3461 §4.3): how much of the message a failure DSN returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ret {
    /// The whole message (`message/rfc822`).
    Full,
    /// Its header section only (`text/rfc822-headers`).
    Hdrs,
}

impl Ret {
    /// The keyword, as MAIL and the queue file write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Ret::Full => "FULL",
            Ret::Hdrs => "HDRS",
        }
    }
}

/// The envelope-wide DSN parameters of MAIL FROM.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnvelopeDsn {
    /// `RET=`; `None`: not given (we then return the headers, as Postfix does).
    pub ret: Option<Ret>,
    /// `ENVID=`, xtext-decoded; printable ASCII only (checked when it is accepted), at most
    /// 100 characters encoded (RFC 3461 §4.4).
    pub envid: Option<String>,
}

/// `NOTIFY=` (RFC 3461 §4.1) of one recipient. All `false` is "not given", which means
/// failure and delay notices but no success notice (§4.1: "the default is FAILURE,DELAY"
/// in effect, as every MTA implements it). `never` excludes the other three.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Notify {
    pub never: bool,
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

impl Notify {
    /// No NOTIFY parameter was given.
    pub fn is_default(&self) -> bool {
        *self == Notify::default()
    }

    /// Whether a failure DSN is owed for this recipient.
    pub fn wants_failure(&self) -> bool {
        self.failure || self.is_default()
    }

    /// Whether a delay warning is owed for this recipient.
    pub fn wants_delay(&self) -> bool {
        self.delay || self.is_default()
    }

    /// Whether a success DSN (delivered, relayed) is owed: only when asked for.
    pub fn wants_success(&self) -> bool {
        self.success
    }

    /// The parameter value (`NEVER`, or a comma list), `None` when not given.
    pub fn keyword(&self) -> Option<String> {
        if self.never {
            return Some("NEVER".into());
        }
        let words: Vec<&str> = [
            (self.success, "SUCCESS"),
            (self.failure, "FAILURE"),
            (self.delay, "DELAY"),
        ]
        .into_iter()
        .filter_map(|(on, w)| on.then_some(w))
        .collect();
        (!words.is_empty()).then(|| words.join(","))
    }

    /// Parses a NOTIFY value: `NEVER` alone, or a comma list of SUCCESS, FAILURE, DELAY
    /// (case-insensitive, no empty items). `None` for anything else.
    pub fn parse(value: &str) -> Option<Notify> {
        if value.eq_ignore_ascii_case("NEVER") {
            return Some(Notify {
                never: true,
                ..Notify::default()
            });
        }
        let mut n = Notify::default();
        for word in value.split(',') {
            let flag = match word.to_ascii_uppercase().as_str() {
                "SUCCESS" => &mut n.success,
                "FAILURE" => &mut n.failure,
                "DELAY" => &mut n.delay,
                _ => return None,
            };
            *flag = true;
        }
        Some(n)
    }
}

/// Decodes xtext (RFC 3461 §4): `xchar` is `!`..`~` except `+` and `=`, and `+` is followed
/// by exactly two upper-case hex digits. `None` unless `s` is valid xtext whose decoded
/// form is printable ASCII (what Postfix accepts too: anything else could not be written
/// into a DSN field or a header line safely).
pub fn xtext_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                let hex = b.get(i + 1..i + 3)?;
                if !hex.iter().all(|c| matches!(c, b'0'..=b'9' | b'A'..=b'F')) {
                    return None;
                }
                let v = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                if !(0x20..=0x7e).contains(&v) {
                    return None;
                }
                out.push(char::from(v));
                i += 3;
            }
            c @ b'!'..=b'~' if c != b'=' => {
                out.push(char::from(c));
                i += 1;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Encodes as xtext: `+`, `=`, and everything outside `!`..`~` as `+HH`.
pub fn xtext_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xtext_round_trips_and_rejects_what_is_not_xtext() {
        assert_eq!(xtext_decode("abc").as_deref(), Some("abc"));
        assert_eq!(
            xtext_decode("George+20@Tax-+20ME+20.GOV").as_deref(),
            Some("George @Tax- ME .GOV")
        );
        assert_eq!(xtext_decode("a+2Bb+3Dc").as_deref(), Some("a+b=c"));
        for bad in [
            "+", "+4", "+4g", "+zz", "+2b", "a=b", "a b", "é", "+00", "+0A", "+7F", "+C3+A9",
        ] {
            assert_eq!(xtext_decode(bad), None, "{bad}");
        }
        for s in ["", "plain", "a b=c+d", "~!"] {
            let e = xtext_encode(s);
            assert!(!e.contains([' ', '=']), "{e}");
            assert_eq!(xtext_decode(&e).as_deref(), Some(s));
        }
        assert_eq!(xtext_encode("a b+c=d"), "a+20b+2Bc+3Dd");
    }

    #[test]
    fn notify_parsing_and_wishes() {
        let never = Notify::parse("never").unwrap();
        assert!(never.never && !never.wants_failure() && !never.wants_delay());
        assert!(!never.wants_success());
        let s = Notify::parse("SUCCESS").unwrap();
        assert!(s.wants_success() && !s.wants_failure() && !s.wants_delay());
        let fd = Notify::parse("failure,DELAY").unwrap();
        assert!(fd.wants_failure() && fd.wants_delay() && !fd.wants_success());
        let d = Notify::default();
        assert!(d.wants_failure() && d.wants_delay() && !d.wants_success());
        assert_eq!(d.keyword(), None);
        for bad in [
            "",
            "NEVER,SUCCESS",
            "SUCCESS,NEVER",
            "SUCCESS,",
            ",DELAY",
            "ALWAYS",
        ] {
            assert_eq!(Notify::parse(bad), None, "{bad}");
        }
        assert_eq!(fd.keyword().as_deref(), Some("FAILURE,DELAY"));
        assert_eq!(never.keyword().as_deref(), Some("NEVER"));
        for k in ["NEVER", "SUCCESS", "SUCCESS,FAILURE,DELAY", "DELAY"] {
            assert_eq!(Notify::parse(k).unwrap().keyword().as_deref(), Some(k));
        }
    }
}
